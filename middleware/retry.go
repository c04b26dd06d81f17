package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cenkalti/backoff/v5"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// RetryConfig is router.retry: how often and how patiently a failing handler is called again
// before the message goes to the poison queue. Every field's comment gives its default.
type RetryConfig struct {
	// MaxAttempts is how many times the handler is called at most, the first call included;
	// 1 turns retries off. Default: 5.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialInterval is the wait before the second attempt. Default: 100ms.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// Multiplier grows the wait after each failed attempt. Default: 2.
	Multiplier float64 `yaml:"multiplier"`
	// MaxInterval caps the wait between two attempts. Default: 10s.
	MaxInterval time.Duration `yaml:"max_interval"`
	// Jitter spreads each wait at random over [wait*(1-Jitter), wait*(1+Jitter)], so that
	// consumers failing together do not retry together. From 0 to 1. Default: 0.5.
	Jitter float64 `yaml:"jitter"`
	// MaxElapsedTime stops retrying once this much time has passed since the first attempt
	// started (an attempt is not started if its wait would end past it); 0 means no limit.
	// A key's later messages wait behind a message being retried, so keep it short.
	// Default: 1m.
	MaxElapsedTime time.Duration `yaml:"max_elapsed_time"`
}

// DefaultRetryConfig returns the defaults of router.retry.
func DefaultRetryConfig() RetryConfig {
	return RetryConfig{
		MaxAttempts:     5,
		InitialInterval: 100 * time.Millisecond,
		Multiplier:      2,
		MaxInterval:     10 * time.Second,
		Jitter:          0.5,
		MaxElapsedTime:  time.Minute,
	}
}

// Validate reports every problem, with paths relative to router.retry.
func (c *RetryConfig) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 {
		errs = append(errs, config.Invalid("max_attempts", "must be at least 1 (1 turns retries off)"))
	}
	if c.InitialInterval <= 0 {
		errs = append(errs, config.Invalid("initial_interval", "must be positive, e.g. 100ms"))
	}
	if c.Multiplier < 1 {
		errs = append(errs, config.Invalid("multiplier", "must be at least 1"))
	}
	if c.MaxInterval < c.InitialInterval {
		errs = append(errs, config.Invalid("max_interval", "must be at least initial_interval (%s)", c.InitialInterval))
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		errs = append(errs, config.Invalid("jitter", "must be between 0 and 1"))
	}
	if c.MaxElapsedTime < 0 {
		errs = append(errs, config.Invalid("max_elapsed_time", "must not be negative (0: no limit)"))
	}
	return errors.Join(errs...)
}

// NewRetry returns the retry middleware: it calls the handler until it succeeds, returns an
// error that is permanent (Permanent) or marks the event invalid (bus.ErrInvalidEvent), or
// MaxAttempts or MaxElapsedTime are reached, waiting an exponentially growing, jittered
// interval between attempts. Before each attempt it sets HeaderAttempt. When the message's
// context ends (the consumer is shutting down or lost the partition), it stops waiting and
// returns the last error, and the poison middleware leaves the message for redelivery.
//
// The last error is returned unchanged, so callers can still inspect it.
func NewRetry(cfg RetryConfig, logger *slog.Logger) (message.HandlerMiddleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retry: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	r := &retry{cfg: cfg, logger: logger}
	return r.middleware, nil
}

type retry struct {
	cfg    RetryConfig
	logger *slog.Logger
}

func (r *retry) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		rec := failuresFrom(ctx)
		b := backoff.NewExponentialBackOff()
		b.InitialInterval = r.cfg.InitialInterval
		b.Multiplier = r.cfg.Multiplier
		b.MaxInterval = r.cfg.MaxInterval
		b.RandomizationFactor = r.cfg.Jitter
		b.Reset()
		start := time.Now()
		for attempt := 1; ; attempt++ {
			msg.Metadata.Set(HeaderAttempt, strconv.Itoa(attempt))
			msg.SetContext(ctx) // an inner middleware (timeout) may have replaced it
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			rec.record(time.Now())
			if IsPermanent(err) || errors.Is(err, bus.ErrInvalidEvent) || ctx.Err() != nil {
				return nil, err
			}
			if attempt >= r.cfg.MaxAttempts {
				return nil, err
			}
			wait := b.NextBackOff()
			if r.cfg.MaxElapsedTime > 0 && time.Since(start)+wait > r.cfg.MaxElapsedTime {
				return nil, err
			}
			r.logger.Warn("handler failed; retrying", "message_id", msg.UUID, "handler", message.HandlerNameFromCtx(ctx),
				"attempt", attempt, "max_attempts", r.cfg.MaxAttempts, "retry_in", wait, "err", err)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, err
			}
		}
	}
}
