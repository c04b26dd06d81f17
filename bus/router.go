package bus

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/config"
)

// RouterConfig is the router: section of the config file.
type RouterConfig struct {
	// CloseTimeout is how long Close waits for running handlers to finish. Default: 30s.
	CloseTimeout time.Duration `yaml:"close_timeout"`
}

// DefaultRouterConfig returns the router settings used when the file has no router: section.
func DefaultRouterConfig() RouterConfig {
	return RouterConfig{CloseTimeout: 30 * time.Second}
}

// Validate checks the router settings.
func (c *RouterConfig) Validate() error {
	if c.CloseTimeout <= 0 {
		return config.Invalid("close_timeout", "must be positive, e.g. 30s")
	}
	return nil
}

// LoadRouterConfig decodes the router: section of cfg onto the defaults. It knows only the
// router's own keys; a section with middleware settings (retry:, poison:, ordering:, dedup:) is
// read by middleware.LoadConfig, which includes these.
func LoadRouterConfig(cfg *config.Config) (RouterConfig, error) {
	rc := DefaultRouterConfig()
	err := cfg.Section("router").Decode(&rc)
	return rc, err
}

// NewRouter returns a Watermill router that logs through the bus's logger, with the given
// middleware added router-wide in order (the first wraps all others). Add handlers with
// AddConsumerHandler(name, topic, b.Subscriber, fn) and run it with Run(ctx); cancelling ctx
// (for instance from signal.NotifyContext on SIGTERM) drains running handlers for up to
// CloseTimeout, then closes.
//
// The router does not close the bus: close it after Run returns.
func NewRouter(b *Bus, cfg RouterConfig, middleware ...message.HandlerMiddleware) (*message.Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, watermill.NewSlogLogger(b.logger))
	if err != nil {
		return nil, err
	}
	r.AddMiddleware(middleware...)
	return r, nil
}
