package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/config"
)

// RedisStoreConfig is router.dedup.redis.
type RedisStoreConfig struct {
	// URL is the server, as redis://[user@]host:port/db or rediss:// for TLS.
	// Default: redis://127.0.0.1:6379/0.
	URL string `yaml:"url"`
	// Password, when set, replaces the URL's; give it as ${VAR}. Default: "".
	Password config.Secret `yaml:"password"`
	// KeyPrefix starts every key the store writes, so that several services can share a server.
	// Default: "eventbus:dedup:".
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds each command; a slow store must not stall the consumer. Default: 1s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultRedisStoreConfig returns the defaults of router.dedup.redis.
func DefaultRedisStoreConfig() RedisStoreConfig {
	return RedisStoreConfig{URL: "redis://127.0.0.1:6379/0", KeyPrefix: "eventbus:dedup:", Timeout: time.Second}
}

// Validate reports every problem, with paths relative to router.dedup.redis.
func (c *RedisStoreConfig) Validate() error {
	var errs []error
	if _, err := redis.ParseURL(c.URL); err != nil {
		errs = append(errs, config.Invalid("url", "%q: %v", c.URL, err))
	}
	if c.KeyPrefix == "" {
		errs = append(errs, config.Invalid("key_prefix", "must not be empty: the store's keys must be told apart from others"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Invalid("timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// RedisStore is a DedupStore in Redis, shared by every instance of a consumer group: an id is a
// key that expires with the window (SET ... PX).
type RedisStore struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	owned   bool
}

// NewRedisStore connects to the server cfg names and checks that it answers.
func NewRedisStore(ctx context.Context, cfg RedisStoreConfig) (*RedisStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("redis dedup store: %w", err)
	}
	opts, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("redis dedup store: url: %w", err)
	}
	if cfg.Password != "" {
		opts.Password = cfg.Password.Value()
	}
	client := redis.NewClient(opts)
	s := &RedisStore{client: client, prefix: cfg.KeyPrefix, timeout: cfg.Timeout, owned: true}
	pingCtx, cancel := context.WithTimeout(ctx, 5*cfg.Timeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		return nil, errors.Join(fmt.Errorf("redis dedup store: %s does not answer: %w", opts.Addr, err), client.Close())
	}
	return s, nil
}

// NewRedisStoreFromClient uses an existing client, which Close leaves open.
func NewRedisStoreFromClient(client redis.UniversalClient, keyPrefix string, timeout time.Duration) *RedisStore {
	if timeout <= 0 {
		timeout = time.Second
	}
	return &RedisStore{client: client, prefix: keyPrefix, timeout: timeout}
}

// Seen implements DedupStore.
func (s *RedisStore) Seen(ctx context.Context, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.client.Exists(ctx, s.prefix+key).Result()
	if err != nil {
		return false, fmt.Errorf("redis dedup store: exists %s: %w", s.prefix+key, err)
	}
	return n > 0, nil
}

// Mark implements DedupStore.
func (s *RedisStore) Mark(ctx context.Context, key string, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Set(ctx, s.prefix+key, "1", ttl).Err(); err != nil {
		return fmt.Errorf("redis dedup store: set %s: %w", s.prefix+key, err)
	}
	return nil
}

// Close closes the client if the store opened it.
func (s *RedisStore) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.client.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
		return err
	}
	return nil
}
