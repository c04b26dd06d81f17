package router

import (
	"errors"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/middleware/redisstore"
)

// Config is the router: section of the config file: the router itself and its middleware
// chain. Every field's comment (and those of the nested blocks) gives its default.
//
//	router:
//	  close_timeout: 30s
//	  handler_timeout: 30s
//	  retry: {max_attempts: 5, initial_interval: 100ms, max_interval: 10s, max_elapsed_time: 1m}
//	  poison: {enabled: true, topic: "{topic}.poison", on_poisoned: skip}
//	  ordering: {concurrency: 16}
//	  dedup: {enabled: true, window: 24h, store: redis, redis: {addrs: ["redis:6379"]}}
//	  # read by Run (the runner for consumer services) only:
//	  enabled: true
//	  max_consecutive_errors: 10
//	  http: {addr: ":8080"}
//	  log: {format: json, level: info}
//	  tracing: {exporter: otlp, endpoint: "http://otel-collector:4318", service_name: enrollment-notifier}
type Config struct {
	// CloseTimeout is how long Close (or the end of Run's context) waits for running handlers
	// to finish. Default: 30s.
	CloseTimeout time.Duration `yaml:"close_timeout"`
	// HandlerTimeout bounds each attempt of a handler (the message context's deadline); 0 means
	// no bound. Default: 30s, half of Kafka's default kafka.consumer.rebalance_timeout (60s):
	// a hung handler holds its partition (and, with ordering, its key) until it returns, and a
	// member that cannot give its partitions up within the rebalance timeout is dropped from the
	// group. 30s leaves the rest for the drain and the offset commit. A handler that honours its
	// context returns when the deadline passes, and the attempt is retried. Raise it together
	// with rebalance_timeout for handlers that are slow on purpose.
	HandlerTimeout time.Duration `yaml:"handler_timeout"`

	Retry    middleware.RetryConfig    `yaml:"retry"`
	Poison   PoisonConfig              `yaml:"poison"`
	Ordering middleware.OrderingConfig `yaml:"ordering"`
	Dedup    DedupConfig               `yaml:"dedup"`

	// Enabled is the kill switch read by Run: false keeps the process up and serving HTTP,
	// but subscribes to nothing (healthz ok, readyz false). Default: true.
	Enabled bool `yaml:"enabled"`
	// MaxConsecutiveErrors makes Run exit with ErrTooManyErrors after this many handler
	// failures in a row (final failures, after retries, whether poisoned or not), so that the
	// orchestrator restarts a consumer that can no longer make progress. 0 turns the limit off.
	// Default: 0.
	MaxConsecutiveErrors int `yaml:"max_consecutive_errors"`
	// HTTP is the address Run serves /healthz, /readyz and /metrics on.
	HTTP HTTPConfig `yaml:"http"`
	// Log configures the logger Run builds (slog).
	Log LogConfig `yaml:"log"`
	// Tracing configures the OpenTelemetry tracer Run installs.
	Tracing TracingConfig `yaml:"tracing"`
}

// HTTPConfig is router.http.
type HTTPConfig struct {
	// Addr is the listen address of the health and metrics server; empty serves nothing.
	// Default: ":8080" (DefaultHTTPAddr).
	Addr string `yaml:"addr"`
	// StuckAfter is how long one message may stay in the handler chain before /healthz fails
	// (the handler loop is stuck: restart the pod). 0 derives it: with handler_timeout set,
	// retry.max_attempts × (handler_timeout + retry.max_interval) plus a minute; else 10m.
	// Default: 0.
	StuckAfter time.Duration `yaml:"stuck_after"`
}

// DefaultHTTPAddr is router.http.addr's default.
const DefaultHTTPAddr = ":8080"

// LogConfig is router.log.
type LogConfig struct {
	// Format is "json" (one object a line, for log collectors) or "text". Default: json.
	Format string `yaml:"format"`
	// Level is the lowest level written: debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
}

// TracingConfig is router.tracing.
type TracingConfig struct {
	// Exporter is "none" (spans are still created, so trace context still propagates from
	// publish to handler, but nothing is exported) or "otlp" (OTLP over HTTP). Default: none.
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP/HTTP collector's URL, e.g. "http://otel-collector:4318" (spans go
	// to its /v1/traces when the URL has no path); empty leaves the choice to the standard
	// OTEL_EXPORTER_OTLP_* environment variables.
	Endpoint string `yaml:"endpoint"`
	// ServiceName is the service.name resource attribute. Default: the program's name.
	ServiceName string `yaml:"service_name"`
}

// PoisonConfig is router.poison: the poison middleware's settings (middleware.PoisonConfig:
// enabled, topic, on_poisoned) and where the park policy keeps its state.
type PoisonConfig struct {
	middleware.PoisonConfig `yaml:",inline"`
	// Store keeps the park policy's state (which keys are parked behind which poisoned
	// messages): "memory" (this process's: a restart, or a rebalance that moves a key to
	// another instance, forgets it and the key's later messages are handled again) or "redis"
	// (shared by the consumer group's instances: a key stays parked across restarts and
	// rebalances). Only read with on_poisoned: park. Default: memory.
	Store string `yaml:"store"`
	// Redis configures the redis store, with the redis: backend section's connection keys.
	// Default key_prefix: "eventbus:park:".
	Redis redisstore.Config `yaml:"redis"`
}

// Validate reports every problem, with paths relative to router.poison.
func (c *PoisonConfig) Validate() error {
	errs := []error{c.PoisonConfig.Validate()}
	switch c.Store {
	case "memory":
	case "redis":
		if c.OnPoisoned == middleware.Park {
			errs = append(errs, config.Nest("redis", c.Redis.Validate()))
		}
	default:
		errs = append(errs, config.Invalid("store", "%q: want memory or redis", c.Store))
	}
	return errors.Join(errs...)
}

// DedupConfig is router.dedup: skipping events already handled, by event id (ce_id).
type DedupConfig struct {
	// Enabled turns deduplication on. Default: false.
	Enabled bool `yaml:"enabled"`
	// Window is how long an event id is remembered after its event was handled; a duplicate
	// arriving later is handled again. Default: 24h.
	Window time.Duration `yaml:"window"`
	// Store is where ids are remembered: "memory" (this process only: each instance of a
	// consumer group has its own, and a restart forgets) or "redis" (shared by every instance
	// of the group). Default: memory.
	Store string `yaml:"store"`
	// MaxEntries bounds the memory store: beyond it, the oldest ids are forgotten before their
	// window ends. Default: 1000000.
	MaxEntries int `yaml:"max_entries"`
	// ClaimTTL is how long a copy of an event holds its claim without extending it (it is
	// extended every third of it while the handler runs): another copy waits while the claim
	// lasts, so a consumer that dies mid-handler delays the event's redelivery by at most this
	// long. Default: 30s.
	ClaimTTL time.Duration `yaml:"claim_ttl"`
	// Redis configures the redis store, with the redis: backend section's connection keys.
	Redis redisstore.Config `yaml:"redis"`
}

// DefaultConfig returns the settings used when the file has no router: section.
func DefaultConfig() Config {
	return Config{
		CloseTimeout:   30 * time.Second,
		HandlerTimeout: 30 * time.Second,
		Retry:          middleware.DefaultRetryConfig(),
		Poison:         PoisonConfig{PoisonConfig: middleware.DefaultPoisonConfig(), Store: "memory", Redis: redisstore.DefaultParkConfig()},
		Ordering:       middleware.DefaultOrderingConfig(),
		Dedup:          DedupConfig{Window: 24 * time.Hour, Store: "memory", MaxEntries: 1_000_000, ClaimTTL: middleware.DefaultClaimTTL, Redis: redisstore.DefaultConfig()},
		Enabled:        true,
		HTTP:           HTTPConfig{Addr: DefaultHTTPAddr},
		Log:            LogConfig{Format: "json", Level: "info"},
		Tracing:        TracingConfig{Exporter: "none"},
	}
}

// Validate reports every problem, with paths relative to the router: section.
func (c *Config) Validate() error {
	errs := []error{
		config.Nest("retry", c.Retry.Validate()),
		config.Nest("poison", c.Poison.Validate()),
		config.Nest("ordering", c.Ordering.Validate()),
		config.Nest("dedup", c.Dedup.Validate()),
	}
	if c.CloseTimeout <= 0 {
		errs = append(errs, config.Invalid("close_timeout", "must be positive, e.g. 30s"))
	}
	if c.HandlerTimeout < 0 {
		errs = append(errs, config.Invalid("handler_timeout", "must not be negative (0: no timeout)"))
	}
	if c.Poison.OnPoisoned == middleware.Park && !c.Poison.Enabled {
		errs = append(errs, config.Invalid("poison.on_poisoned", "park needs poison.enabled: true"))
	}
	if c.MaxConsecutiveErrors < 0 {
		errs = append(errs, config.Invalid("max_consecutive_errors", "must not be negative (0: no limit)"))
	}
	if c.HTTP.StuckAfter < 0 {
		errs = append(errs, config.Invalid("http.stuck_after", "must not be negative (0: derived from handler_timeout and retry)"))
	}
	if c.HTTP.Addr != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Addr); err != nil || port == "" {
			errs = append(errs, config.Invalid("http.addr", "%q: want host:port or :port, e.g. \":8080\"", c.HTTP.Addr))
		}
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, config.Invalid("log.format", "%q: want json or text", c.Log.Format))
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		errs = append(errs, config.Invalid("log.level", "%q: want debug, info, warn or error", c.Log.Level))
	}
	switch c.Tracing.Exporter {
	case "none":
	case "otlp":
		if c.Tracing.Endpoint != "" {
			if u, err := url.Parse(c.Tracing.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, config.Invalid("tracing.endpoint", "%q: want the collector's OTLP/HTTP URL, e.g. http://otel-collector:4318", c.Tracing.Endpoint))
			}
		}
	default:
		errs = append(errs, config.Invalid("tracing.exporter", "%q: want none or otlp", c.Tracing.Exporter))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// Validate reports every problem, with paths relative to router.dedup.
func (c *DedupConfig) Validate() error {
	var errs []error
	if c.Window <= 0 {
		errs = append(errs, config.Invalid("window", "must be positive, e.g. 24h"))
	}
	if c.ClaimTTL < 30*time.Millisecond {
		errs = append(errs, config.Invalid("claim_ttl", "%s: must be at least 30ms, e.g. 30s", c.ClaimTTL))
	}
	switch c.Store {
	case "memory":
		if c.MaxEntries < 1 {
			errs = append(errs, config.Invalid("max_entries", "must be at least 1"))
		}
	case "redis":
		errs = append(errs, config.Nest("redis", c.Redis.Validate()))
	default:
		errs = append(errs, config.Invalid("store", "%q: want memory or redis", c.Store))
	}
	return errors.Join(errs...)
}

// LoadConfig decodes the router: section of cfg onto the defaults and validates it; every
// problem names the file, line and key.
func LoadConfig(cfg *config.Config) (Config, error) {
	c := DefaultConfig()
	err := cfg.Section("router").Decode(&c)
	return c, err
}
