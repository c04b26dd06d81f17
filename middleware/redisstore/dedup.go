package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/config"
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

// Dedup is a middleware.DedupStore in Redis: an id is a key that expires with the window
// (SET ... PX).
type Dedup struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	owned   bool
}

// OpenDedup connects to the server cfg names and checks that it answers.
func OpenDedup(ctx context.Context, cfg Config) (*Dedup, error) {
	client, err := connect(ctx, cfg, "dedup")
	if err != nil {
		return nil, err
	}
	return &Dedup{client: client, prefix: cfg.KeyPrefix, timeout: cfg.Timeout, owned: true}, nil
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
	return &Dedup{client: client, prefix: keyPrefix, timeout: timeout}
}

// Seen implements middleware.DedupStore.
func (s *Dedup) Seen(ctx context.Context, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.client.Exists(ctx, s.prefix+key).Result()
	if err != nil {
		return false, fmt.Errorf("redis dedup store: exists %s: %w", s.prefix+key, err)
	}
	return n > 0, nil
}

// Mark implements middleware.DedupStore.
func (s *Dedup) Mark(ctx context.Context, key string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Set(ctx, s.prefix+key, "1", ttl).Err(); err != nil {
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
