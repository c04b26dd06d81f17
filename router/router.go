package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/middleware/redisstore"
)

// Option changes how New builds the router.
type Option func(*options)

type options struct {
	poisonPub message.Publisher
	store     middleware.DedupStore
	logger    *slog.Logger
	hooks     hooks
}

// hooks are the runner's observation points in the chain (nil: none): outer wraps the whole
// chain, final sees each message's outcome after retries (inside poison and dedup), attempt
// sees each attempt (inside retry).
type hooks struct {
	outer, final, attempt message.HandlerMiddleware
}

// withHooks puts the runner's telemetry into the chain.
func withHooks(h hooks) Option { return func(o *options) { o.hooks = h } }

// WithPoisonPublisher publishes poisoned messages with pub instead of the bus's publisher (to
// keep the poison queue on another cluster, say).
func WithPoisonPublisher(pub message.Publisher) Option { return func(o *options) { o.poisonPub = pub } }

// WithDedupStore uses store for deduplication instead of the one router.dedup.store names. The
// router does not close it.
func WithDedupStore(store middleware.DedupStore) Option { return func(o *options) { o.store = store } }

// WithLogger logs through l instead of the bus's logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Router is Watermill's router with the middleware chain that Config describes. Add handlers
// with the embedded router's AddConsumerHandler / AddHandler and the bus's Subscriber, as usual;
// every handler gets the chain, and, on a backend that pipelines, per-key ordering.
//
// Run it with Run(ctx); cancelling ctx (signal.NotifyContext on SIGTERM, say) drains: the
// subscriptions stop taking messages, running handlers get up to close_timeout to finish, with
// their contexts alive, and their acks reach the broker (within the backend's drain_timeout).
// The router does not close the bus or its subscriber: close the bus after Run returns.
type Router struct {
	*message.Router

	releaseOnce sync.Once
	release     []func() error
	releaseErr  error
}

// FromConfig builds the router for b from cfg's router: section: LoadConfig, then New.
func FromConfig(b *bus.Bus, cfg *config.Config, opts ...Option) (*Router, error) {
	c, err := LoadConfig(cfg)
	if err != nil {
		return nil, err
	}
	return New(b, c, opts...)
}

// New builds the router for b with the middleware chain in the order the package
// documentation explains. It fails, before any message is read, when the configuration is
// invalid or asks for more than the backend does: ordering.concurrency above 1 on a backend
// without bus.Pipelining is a bus.ErrNotSupported error. It opens the Redis dedup store when one
// is configured; Run and Close release it.
func New(b *bus.Bus, cfg Config, opts ...Option) (*Router, error) {
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
		if init, ok := b.Subscriber.(message.SubscribeInitializer); ok {
			o.poisonPub = &poisonKeeper{Publisher: b.Publisher, init: init, ready: map[string]bool{}}
		}
	}
	chain, release, err := chainWith(cfg, o.poisonPub, o.store, o.logger, o.hooks)
	r := &Router{release: release}
	if err != nil {
		return nil, errors.Join(err, r.Close())
	}
	wr, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, driver.WatermillLogger(o.logger))
	if err != nil {
		return nil, errors.Join(err, r.Close())
	}
	wr.AddMiddleware(chain...)
	r.Router = wr
	if b.Capabilities().Pipelining {
		ord, err := middleware.NewOrdering(cfg.Ordering, o.logger)
		if err != nil {
			return nil, errors.Join(err, r.Close())
		}
		wr.AddSubscriberDecorators(ord.Decorate)
	}
	// Last, so outermost: Watermill's Close never reaches the bus's subscriber (or Ordering).
	wr.AddSubscriberDecorators(func(sub message.Subscriber) (message.Subscriber, error) { return keepOpen{sub}, nil })
	return r, nil
}

// keepOpen passes Subscribe through and ignores Close. Watermill's router closes a handler's
// subscriber the moment it starts closing, beside cancelling the subscription's context and
// before its running handlers have returned: a subscriber closed then may drop the acks of
// handlers that finish during the drain (Watermill's Kafka subscriber, kafka.consumer.
// max_in_flight 0, discards them). The cancelled context alone makes each backend
// stop taking messages and drain those out, with their contexts alive, for its drain_timeout;
// the bus's Close, after Run, closes the subscriber once that is done. The subscriber is the
// bus's, possibly shared with other routers, so it is not the router's to close anyway.
type keepOpen struct{ message.Subscriber }

func (keepOpen) Close() error { return nil }

// Chain returns the handler middleware that cfg describes, outermost first:
//
//	CorrelationID → RedriveFilter → Poison → Dedup → Retry → Recoverer → Timeout → handler
//
// and the functions that release what it opened (Redis dedup and park stores). The package
// documentation says why in this order. store, when not nil, replaces the configured dedup
// store and is not released.
func Chain(cfg Config, poisonPub message.Publisher, store middleware.DedupStore, logger *slog.Logger) (chain []message.HandlerMiddleware, release []func() error, err error) {
	return chainWith(cfg, poisonPub, store, logger, hooks{})
}

func chainWith(cfg Config, poisonPub message.Publisher, store middleware.DedupStore, logger *slog.Logger, h hooks) (chain []message.HandlerMiddleware, release []func() error, err error) {
	if h.outer != nil {
		chain = append(chain, h.outer)
	}
	// The redrive filter skips, before any attempt, a redriven message meant for another group.
	chain = append(chain, middleware.CorrelationID, middleware.NewRedriveFilter(logger))
	if cfg.Poison.Enabled {
		var parked middleware.ParkStore // nil: memory
		if cfg.Poison.OnPoisoned == middleware.Park && cfg.Poison.Store == "redis" {
			ps, err := redisstore.OpenPark(context.Background(), cfg.Poison.Redis)
			if err != nil {
				return nil, release, err
			}
			parked = ps
			release = append(release, ps.Close)
		}
		p, err := middleware.NewPoisonWithParkStore(poisonPub, cfg.Poison.PoisonConfig, parked, logger)
		if err != nil {
			return nil, release, err
		}
		chain = append(chain, p)
	}
	if cfg.Dedup.Enabled {
		if store == nil {
			switch cfg.Dedup.Store {
			case "redis":
				rs, err := redisstore.OpenDedup(context.Background(), cfg.Dedup.Redis)
				if err != nil {
					return nil, release, err
				}
				store = rs
				release = append(release, rs.Close)
			default:
				store = middleware.NewMemoryStore(cfg.Dedup.MaxEntries)
			}
		}
		d, err := middleware.NewDedup(store, cfg.Dedup.Window, cfg.Dedup.ClaimTTL, logger)
		if err != nil {
			return nil, release, err
		}
		chain = append(chain, d)
	}
	retry, err := middleware.NewRetry(cfg.Retry, logger)
	if err != nil {
		return nil, release, err
	}
	if h.final != nil {
		chain = append(chain, h.final)
	}
	chain = append(chain, retry)
	if h.attempt != nil {
		chain = append(chain, h.attempt)
	}
	chain = append(chain, middleware.Recoverer)
	if cfg.HandlerTimeout > 0 {
		t, err := middleware.Timeout(cfg.HandlerTimeout)
		if err != nil {
			return nil, release, err
		}
		chain = append(chain, t)
	}
	return chain, release, nil
}

// Run runs the router until ctx ends or Close is called (see message.Router.Run), then
// releases what New opened.
func (r *Router) Run(ctx context.Context) error {
	err := r.Router.Run(ctx)
	return errors.Join(err, r.releaseAll())
}

// Close closes the router (draining running handlers for up to close_timeout) and releases
// what New opened.
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

// poisonKeeper publishes to a poison topic after making sure, once per topic, that the bus's
// consumer group keeps what is published there (its subscriber's SubscribeInitialize), so that
// `eventbus dlq` can read the poison queue in that group. RabbitMQ needs it: its publisher does
// not declare its own group's queues (publisher.declare_consumer_group is off), and a poison
// topic no queue is bound to would refuse the message. On Kafka and Redis it creates the topic
// or the group a little earlier than the first read would.
type poisonKeeper struct {
	message.Publisher
	init  message.SubscribeInitializer
	mu    sync.Mutex
	ready map[string]bool
}

func (p *poisonKeeper) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	if !p.ready[topic] {
		if err := p.init.SubscribeInitialize(topic); err != nil {
			p.mu.Unlock()
			return fmt.Errorf("prepare poison topic %s for the consumer group: %w", topic, err)
		}
		p.ready[topic] = true
	}
	p.mu.Unlock()
	return p.Publisher.Publish(topic, msgs...)
}
