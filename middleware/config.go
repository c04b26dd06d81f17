package middleware

import (
	"errors"
	"time"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// Config is the router: section of the config file: the router itself and its middleware
// chain. Every field's comment (and those of the nested blocks) gives its default.
//
//	router:
//	  close_timeout: 30s
//	  handler_timeout: 10s
//	  retry: {max_attempts: 5, initial_interval: 100ms, max_interval: 10s, max_elapsed_time: 1m}
//	  poison: {enabled: true, topic: "{topic}.poison"}
//	  ordering: {concurrency: 16, on_poisoned: skip}
//	  dedup: {enabled: true, window: 24h, store: redis, redis: {url: "redis://redis:6379/0"}}
type Config struct {
	// RouterConfig holds close_timeout, the router's own setting.
	bus.RouterConfig `yaml:",inline"`
	// HandlerTimeout bounds each attempt of a handler (the message context's deadline); 0 means
	// no bound. Default: 0.
	HandlerTimeout time.Duration `yaml:"handler_timeout"`

	Retry    RetryConfig    `yaml:"retry"`
	Poison   PoisonConfig   `yaml:"poison"`
	Ordering OrderingConfig `yaml:"ordering"`
	Dedup    DedupConfig    `yaml:"dedup"`
}

// DefaultConfig returns the settings used when the file has no router: section.
func DefaultConfig() Config {
	return Config{
		RouterConfig: bus.DefaultRouterConfig(),
		Retry:        DefaultRetryConfig(),
		Poison:       DefaultPoisonConfig(),
		Ordering:     DefaultOrderingConfig(),
		Dedup:        DefaultDedupConfig(),
	}
}

// Validate reports every problem, with paths relative to the router: section.
func (c *Config) Validate() error {
	errs := []error{
		c.RouterConfig.Validate(),
		config.Nest("retry", c.Retry.Validate()),
		config.Nest("poison", c.Poison.Validate()),
		config.Nest("ordering", c.Ordering.Validate()),
		config.Nest("dedup", c.Dedup.Validate()),
	}
	if c.HandlerTimeout < 0 {
		errs = append(errs, config.Invalid("handler_timeout", "must not be negative (0: no timeout)"))
	}
	if c.Ordering.OnPoisoned == Park && !c.Poison.Enabled {
		errs = append(errs, config.Invalid("ordering.on_poisoned", "park needs poison.enabled: true"))
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
