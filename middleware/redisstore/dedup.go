package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
)

// Config is router.dedup.redis. Its connection settings have the keys and meaning of the redis:
// backend section's.
type Config struct {
	// Addrs are the host:port addresses of the server; several are the seed nodes of a Redis
	// Cluster. Default: [127.0.0.1:6379].
	Addrs []string `yaml:"addrs"`
	// Username for Redis 6 ACLs; "" uses the default user. Default: "".
	Username string `yaml:"username"`
	// Password for AUTH; give it as ${VAR} or ${file:PATH}. Never logged or printed.
	Password config.Secret `yaml:"password"`
	// DB is the database number on a single server. Default: 0.
	DB int `yaml:"db"`
	// TLS configures the connection's TLS, as redis.tls does. Default: off.
	TLS config.TLS `yaml:"tls"`
	// KeyPrefix starts every key the store writes, so that several services can share a server.
	// Default: "eventbus:dedup:".
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds each command; a slow store must not stall the consumer. Default: 1s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the defaults of router.dedup.redis.
func DefaultConfig() Config {
	return Config{Addrs: []string{"127.0.0.1:6379"}, KeyPrefix: "eventbus:dedup:", Timeout: time.Second}
}

// RenamedKeys reports the URL key of earlier versions as renamed.
func (c *Config) RenamedKeys() map[string]string {
	return map[string]string{"url": "addrs (with username, password, db and tls, as in the redis: section)"}
}

// Validate reports every problem, with paths relative to router.dedup.redis.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, config.Invalid("addrs", "must list at least one host:port"))
	}
	for i, a := range c.Addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			errs = append(errs, config.Invalid("addrs["+strconv.Itoa(i)+"]", "%q: want host:port", a))
		}
	}
	if c.DB < 0 {
		errs = append(errs, config.Invalid("db", "must not be negative"))
	}
	if c.KeyPrefix == "" {
		errs = append(errs, config.Invalid("key_prefix", "must not be empty: the store's keys must be told apart from others"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive"))
	}
	errs = append(errs, config.Nest("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// Dedup is a middleware.DedupClaimer in Redis: a handled id is a key set to "1" that expires
// with the window (SET ... PX); a claim is the same key set to this store's owner token for
// the claim's ttl (SET NX PX), so that only one copy of an event is handled at a time across
// every instance of a consumer group.
type Dedup struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	owned   bool
	owner   string // the value of this store's claims
}

// markedValue is the value of a handled id's key.
const markedValue = "1"

var (
	// claimScript claims KEYS[1] for ARGV[1] for ARGV[2] ms: 1 claimed, 2 marked, 3 claimed by
	// another.
	claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == '` + markedValue + `' then return 2 end
return 3`)
	// extendScript extends KEYS[1] to ARGV[2] ms if ARGV[1] holds it.
	extendScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	// releaseScript deletes KEYS[1] if ARGV[1] holds it.
	releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// OpenDedup connects to the server cfg names and checks that it answers.
func OpenDedup(ctx context.Context, cfg Config) (*Dedup, error) {
	client, err := connect(ctx, cfg, "dedup")
	if err != nil {
		return nil, err
	}
	return &Dedup{client: client, prefix: cfg.KeyPrefix, timeout: cfg.Timeout, owned: true, owner: newOwner()}, nil
}

// connect builds the client cfg describes and checks that the server answers; what names the
// store in errors.
func connect(ctx context.Context, cfg Config, what string) (redis.UniversalClient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("redis %s store: %w", what, err)
	}
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("redis %s store: tls: %w", what, err)
	}
	opts := &redis.UniversalOptions{
		Addrs:      cfg.Addrs,
		Username:   cfg.Username,
		Password:   cfg.Password.Value(),
		DB:         cfg.DB,
		TLSConfig:  tlsCfg,
		ClientName: "eventbus-" + what,
	}
	var client redis.UniversalClient
	if len(cfg.Addrs) > 1 {
		client = redis.NewClusterClient(opts.Cluster())
	} else {
		client = redis.NewClient(opts.Simple())
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*cfg.Timeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("redis %s store: %v does not answer: %w", what, cfg.Addrs, err), client.Close())
	}
	return client, nil
}

// DedupFromClient uses an existing client, which Close leaves open.
func DedupFromClient(client redis.UniversalClient, keyPrefix string, timeout time.Duration) *Dedup {
	if timeout <= 0 {
		timeout = time.Second
	}
	return &Dedup{client: client, prefix: keyPrefix, timeout: timeout, owner: newOwner()}
}

// newOwner is a store's claim token: unique to the store, never "1".
func newOwner() string {
	host, _ := os.Hostname()
	return "claim:" + host + ":" + watermill.NewShortUUID()
}

// Seen implements middleware.DedupStore: the id is marked (a claim is not).
func (s *Dedup) Seen(ctx context.Context, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, err := s.client.Get(ctx, s.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis dedup store: get %s: %w", s.prefix+key, err)
	}
	return v == markedValue, nil
}

// Claim implements middleware.DedupClaimer, in one round trip.
func (s *Dedup) Claim(ctx context.Context, key string, ttl time.Duration) (middleware.ClaimState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := claimScript.Run(ctx, s.client, []string{s.prefix + key}, s.owner, ttl.Milliseconds()).Int()
	if err != nil {
		return middleware.Claimed, fmt.Errorf("redis dedup store: claim %s: %w", s.prefix+key, err)
	}
	switch n {
	case 1:
		return middleware.Claimed, nil
	case 2:
		return middleware.Done, nil
	}
	return middleware.Busy, nil
}

// Extend implements middleware.DedupClaimer.
func (s *Dedup) Extend(ctx context.Context, key string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := extendScript.Run(ctx, s.client, []string{s.prefix + key}, s.owner, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("redis dedup store: extend the claim on %s: %w", s.prefix+key, err)
	}
	return nil
}

// Release implements middleware.DedupClaimer.
func (s *Dedup) Release(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := releaseScript.Run(ctx, s.client, []string{s.prefix + key}, s.owner).Err(); err != nil {
		return fmt.Errorf("redis dedup store: release the claim on %s: %w", s.prefix+key, err)
	}
	return nil
}

// Mark implements middleware.DedupStore.
func (s *Dedup) Mark(ctx context.Context, key string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Set(ctx, s.prefix+key, markedValue, ttl).Err(); err != nil {
		return fmt.Errorf("redis dedup store: set %s: %w", s.prefix+key, err)
	}
	return nil
}

// Close closes the client if the store opened it.
func (s *Dedup) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return err
	}
	return nil
}

var _ middleware.DedupClaimer = (*Dedup)(nil)
