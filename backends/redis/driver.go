package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Name is the backend's name in the config file.
const Name = "redis"

func init() { driver.Register[Config](Name, backendDriver{}) }

type backendDriver struct{}

func (backendDriver) DefaultConfig() *Config { return DefaultConfig() }

// NewClient returns the go-redis client cfg describes: a single-server client for one address,
// a Cluster client for several.
func NewClient(cfg *Config) (redis.UniversalClient, error) {
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, err
	}
	opts := &redis.UniversalOptions{
		Addrs:        cfg.Addrs,
		Username:     cfg.Username,
		Password:     cfg.Password.Value(),
		DB:           cfg.DB,
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		TLSConfig:    tlsCfg,
		ClientName:   "eventbus",
		// Deadlines of the contexts passed in bound commands; cancellation still waits for the
		// reply, which is why BlockTime bounds how long Close takes.
		ContextTimeoutEnabled: true,
	}
	if len(cfg.Addrs) > 1 {
		return redis.NewClusterClient(opts.Cluster()), nil
	}
	return redis.NewClient(opts.Simple()), nil
}

func (backendDriver) Open(ctx context.Context, c *Config, o driver.Options) (*driver.Conn, error) {
	cfg := *c
	if o.ConsumerGroup != "" {
		cfg.ConsumerGroup = o.ConsumerGroup
	}
	if o.StartFrom != driver.StartDefault {
		cfg.Consumer.StartFrom = string(o.StartFrom)
	}
	if err := applyStart(&cfg, o); err != nil {
		return nil, err
	}
	if o.MaxInFlight > 0 {
		// The ordering middleware and the dlq tool ask for a window of un-acked messages.
		cfg.Consumer.MaxInFlight = o.MaxInFlight
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := o.Logger.With("backend", Name)

	client, err := NewClient(&cfg)
	if err != nil {
		return nil, err
	}
	server, err := inspectServer(ctx, client, cfg.WriteTimeout+cfg.ReadTimeout)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// go-redis reports the deadline, not the dial errors it retried through.
		err = fmt.Errorf("no answer within %s: %w", cfg.WriteTimeout+cfg.ReadTimeout, err)
	}
	if err != nil {
		err = classify(fmt.Sprintf("connect to redis %v", cfg.Addrs), err)
		if errors.Is(err, driver.ErrUnavailable) {
			err = fmt.Errorf("%w (is a Redis server up there?)", err)
		}
		return nil, errors.Join(err, client.Close())
	}
	if !server.persistent {
		logger.Warn("redis keeps streams only in memory: a restart loses every entry and consumer group; "+
			"enable appendonly for persistence", "addrs", cfg.Addrs, "persistence", server.note)
	}

	if server.maxBulk > 0 && cfg.Publisher.MaxMessageBytes > server.maxBulk {
		logger.Warn("redis.publisher.max_message_bytes is above the server's proto-max-bulk-len: the server refuses payloads between the two",
			"max_message_bytes", cfg.Publisher.MaxMessageBytes, "proto_max_bulk_len", server.maxBulk)
	}

	// The publisher gets a client of its own: it closes it on Close, and the router closes a
	// handler's publisher when the handler stops.
	pubClient, err := NewClient(&cfg)
	if err != nil {
		return nil, errors.Join(err, client.Close())
	}
	pub := &publisher{client: pubClient, cfg: cfg.Publisher}
	sub, err := NewSubscriber(client, cfg, logger)
	if err != nil {
		return nil, errors.Join(err, pub.Close(), client.Close())
	}
	sub.temporary = o.TemporaryGroup

	caps := driver.Capabilities{
		ConsumerGroups:  true,
		PerKeyOrdering:  false,
		Persistence:     server.persistent,
		Replay:          true,
		ReplayByTime:    true,
		Pipelining:      cfg.Consumer.MaxInFlight > 1,
		MaxMessageBytes: cfg.Publisher.MaxMessageBytes,
		Notes: map[driver.Capability]string{
			driver.PerKeyOrdering: "stream order holds only with a single consumer per group and consumer.max_in_flight 1; entries claimed from a stopped consumer arrive late",
			driver.Persistence:    server.note,
			driver.Replay:         "a new group with consumer.start_from oldest reads what the stream retains: publisher.retention (7 days by default) and publisher.max_len bound it",
			driver.ReplayByTime:   "consumer.start_from takes an RFC 3339 time (stream ids are millisecond timestamps); Rewind moves an existing group",
			driver.NativeDelay:    "Redis Streams have no delayed delivery",
		},
	}
	if !caps.Pipelining {
		caps.Notes[driver.Pipelining] = "consumer.max_in_flight is 1: a message is handed out only after the previous one was acked or nacked"
	} else {
		caps.Notes[driver.Pipelining] = fmt.Sprintf("up to %d messages out at once (consumer.max_in_flight), each acked on its own", cfg.Consumer.MaxInFlight)
	}
	admin := newAdmin(client, &cfg)
	admin.PoisonQueue = poisonQueueOpener(client, pub)
	if start, err := startID(cfg.Consumer.StartFrom); err == nil && cfg.ConsumerGroup != "" {
		admin.BacklogEnd = backlogEnd(client, cfg.ConsumerGroup, start)
	}
	var closeOnce sync.Once
	var closeErr error
	return &driver.Conn{
		Publisher:    pub,
		Subscriber:   sub,
		Capabilities: caps,
		Lag:          lagFunc(client, cfg.ConsumerGroup),
		Admin:        admin,
		Close: func() error {
			closeOnce.Do(func() { closeErr = client.Close() })
			return closeErr
		},
		As: func(target any) bool {
			switch t := target.(type) {
			case *redis.UniversalClient:
				*t = client
				return true
			case **Subscriber:
				*t = sub
				return true
			case *[]string:
				*t = append([]string(nil), cfg.Addrs...)
				return true
			}
			return false
		},
	}, nil
}

// serverInfo is what the driver learns about the server at start-up.
type serverInfo struct {
	persistent bool
	note       string // how the server persists, for Capabilities and the start-up warning
	maxBulk    int
}

// inspectServer checks the server answers, is recent enough, and how it keeps data. On a Cluster
// every primary is checked and the weakest setting counts.
func inspectServer(ctx context.Context, client redis.UniversalClient, timeout time.Duration) (serverInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	check := func(ctx context.Context, c *redis.Client) (serverInfo, error) {
		if err := c.Ping(ctx).Err(); err != nil {
			return serverInfo{}, err
		}
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return serverInfo{}, err
		}
		if v := infoField(info, "redis_version"); v != "" && !atLeast(v, 6, 2) {
			return serverInfo{}, fmt.Errorf("redis %s is too old: the backend needs 6.2 or newer (XAUTOCLAIM)", v)
		}
		return persistenceOf(ctx, c), nil
	}
	switch c := client.(type) {
	case *redis.Client:
		return check(ctx, c)
	case *redis.ClusterClient:
		var mu sync.Mutex
		weakest := serverInfo{persistent: true}
		first := true
		err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			si, err := check(ctx, m)
			if err != nil {
				return fmt.Errorf("%s: %w", m.Options().Addr, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if first || (weakest.persistent && !si.persistent) {
				weakest = si
			}
			if si.maxBulk < weakest.maxBulk || weakest.maxBulk == 0 {
				weakest.maxBulk = si.maxBulk
			}
			first = false
			return nil
		})
		return weakest, err
	}
	return serverInfo{note: "unknown client type"}, client.Ping(ctx).Err()
}

// persistenceOf reads appendonly, appendfsync and save. Managed services often disable CONFIG;
// then persistence is unknown and not claimed.
func persistenceOf(ctx context.Context, c *redis.Client) serverInfo {
	vals, err := c.ConfigGet(ctx, "*").Result()
	if err != nil {
		return serverInfo{note: "unknown: CONFIG GET is not allowed (" + err.Error() + "); not claimed"}
	}
	si := serverInfo{}
	if n, err := strconv.Atoi(vals["proto-max-bulk-len"]); err == nil {
		si.maxBulk = n
	}
	switch {
	case vals["appendonly"] == "yes":
		si.persistent = true
		si.note = "appendonly yes, appendfsync " + vals["appendfsync"]
		if vals["appendfsync"] != "always" {
			si.note += ": a crash of the machine (not just of Redis) can lose the last second of writes"
		}
		si.note += "; replication is asynchronous, so a failover can lose acknowledged writes"
	case strings.TrimSpace(vals["save"]) != "":
		si.note = "RDB snapshots only (save " + vals["save"] + "): writes since the last snapshot are lost if Redis stops abruptly"
	default:
		si.note = "none: appendonly is off and save is empty, so a restart loses every stream"
	}
	return si
}

func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return true
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return maj > major || (maj == major && mnr >= minor)
}
