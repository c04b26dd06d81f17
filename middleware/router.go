package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// Option changes how NewRouter builds the chain.
type Option func(*options)

type options struct {
	poisonPub message.Publisher
	store     DedupStore
	logger    *slog.Logger
}

// WithPoisonPublisher publishes poisoned messages with pub instead of the bus's publisher (to
// keep the poison queue on another cluster, say).
func WithPoisonPublisher(pub message.Publisher) Option { return func(o *options) { o.poisonPub = pub } }

// WithDedupStore uses store for deduplication instead of the one router.dedup.store names. The
// router does not close it.
func WithDedupStore(store DedupStore) Option { return func(o *options) { o.store = store } }

// WithLogger logs through l instead of the bus's logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Router is Watermill's router with the chain that Config describes. Add handlers with the
// embedded router's AddConsumerHandler / AddHandler and the bus's Subscriber, as usual; every
// handler gets the chain, and, on a backend that pipelines, per-key ordering.
type Router struct {
	*message.Router

	releaseOnce sync.Once
	release     []func() error
	releaseErr  error
}

// NewRouter builds the router for b from the router: section (see LoadConfig), with the
// middleware chain in the order the package documentation explains. It fails, before any
// message is read, when the configuration is invalid or asks for more than the backend does:
// ordering.concurrency above 1 on a backend without bus.Pipelining is a bus.ErrNotSupported
// error. It opens the Redis dedup store when one is configured; Run and Close release it.
func NewRouter(b *bus.Bus, cfg Config, opts ...Option) (*Router, error) {
	o := options{logger: b.Logger()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, config.Nest("router", err)
	}
	if cfg.Ordering.Concurrency > 1 {
		if err := b.Require(bus.Pipelining); err != nil {
			return nil, fmt.Errorf("router.ordering.concurrency is %d: handling messages in parallel needs a subscriber that hands out messages before earlier ones are acked: %w", cfg.Ordering.Concurrency, err)
		}
	}
	if o.poisonPub == nil {
		o.poisonPub = b.Publisher
	}

	r := &Router{}
	chain := []message.HandlerMiddleware{CorrelationID}
	if cfg.Poison.Enabled {
		p, err := NewPoison(o.poisonPub, cfg.Poison, cfg.Ordering.OnPoisoned, o.logger)
		if err != nil {
			return nil, err
		}
		chain = append(chain, p)
	}
	if cfg.Dedup.Enabled {
		store := o.store
		if store == nil {
			var err error
			if store, err = openStore(cfg.Dedup); err != nil {
				return nil, err
			}
			r.release = append(r.release, store.Close)
		}
		d, err := NewDedup(store, cfg.Dedup.Window, o.logger)
		if err != nil {
			return nil, errors.Join(err, r.Close())
		}
		chain = append(chain, d)
	}
	retry, err := NewRetry(cfg.Retry, o.logger)
	if err != nil {
		return nil, errors.Join(err, r.Close())
	}
	chain = append(chain, retry, Recoverer)
	if cfg.HandlerTimeout > 0 {
		t, err := Timeout(cfg.HandlerTimeout)
		if err != nil {
			return nil, errors.Join(err, r.Close())
		}
		chain = append(chain, t)
	}

	wr, err := bus.NewRouter(b, cfg.RouterConfig, chain...)
	if err != nil {
		return nil, errors.Join(err, r.Close())
	}
	r.Router = wr
	if b.Capabilities().Pipelining {
		ord, err := NewOrdering(cfg.Ordering, o.logger)
		if err != nil {
			return nil, errors.Join(err, r.Close())
		}
		wr.AddSubscriberDecorators(ord.Decorate)
	}
	return r, nil
}

func openStore(cfg DedupConfig) (DedupStore, error) {
	switch cfg.Store {
	case "redis":
		return NewRedisStore(context.Background(), cfg.Redis)
	default:
		return NewMemoryStore(cfg.MaxEntries), nil
	}
}

// Run runs the router until ctx ends or Close is called (see message.Router.Run), then
// releases what NewRouter opened.
func (r *Router) Run(ctx context.Context) error {
	err := r.Router.Run(ctx)
	return errors.Join(err, r.releaseAll())
}

// Close closes the router (draining running handlers for up to close_timeout) and releases
// what NewRouter opened.
func (r *Router) Close() error {
	var err error
	if r.Router != nil {
		err = r.Router.Close()
	}
	return errors.Join(err, r.releaseAll())
}

func (r *Router) releaseAll() error {
	r.releaseOnce.Do(func() {
		var errs []error
		for _, f := range r.release {
			errs = append(errs, f())
		}
		r.releaseErr = errors.Join(errs...)
	})
	return r.releaseErr
}
