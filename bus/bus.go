package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/config"
)

// StartFrom says where a consumer group that has no committed position starts reading.
type StartFrom = driver.StartFrom

// Start positions; StartDefault leaves the choice to the backend section's consumer.start_from.
const (
	StartDefault = driver.StartDefault
	StartOldest  = driver.StartOldest
	StartNewest  = driver.StartNewest
)

// ParseStartFrom parses "oldest" or "newest" (also earliest/beginning and latest/end).
func ParseStartFrom(s string) (StartFrom, error) { return driver.ParseStartFrom(s) }

// Options are the caller's overrides of the config file, passed to the driver.
type Options struct {
	// ConsumerGroup replaces the backend's configured consumer group when not empty.
	ConsumerGroup string
	// StartFrom replaces the backend's configured start position for new consumer groups.
	StartFrom StartFrom
	// StartAt, when not zero, makes a new consumer group start at the first message the broker
	// stamped at or after this time. Kafka and Redis honour it; RabbitMQ only with
	// queue.type stream; elsewhere Open fails with ErrNotSupported. Default: zero.
	StartAt time.Time
	// StartPosition, when not empty, makes a new consumer group start at this message,
	// included: a Position's Coordinates (Kafka "partition:offset", a Redis stream id). A
	// backend that cannot start there fails Open with ErrNotSupported. Default: "".
	StartPosition string
	// TemporaryGroup marks ConsumerGroup as throwaway (a CLI session, a demo run): the backend
	// may let the broker drop the group's state once it has gone unused for a while, instead of
	// keeping it, and collecting messages for it, forever. Kafka ignores it; RabbitMQ puts an
	// expiry on the group's queues.
	TemporaryGroup bool
	// Logger receives the bus's and the Watermill adapter's logs. Default: slog.Default().
	Logger *slog.Logger
	// Require lists capabilities the caller depends on; Open fails with ErrNotSupported when the
	// backend, as configured, lacks one.
	Require []Capability
	// Codec encodes event data in Publish. Default: JSON.
	Codec Codec
	// MaxInFlight, when positive, asks for a subscriber that pipelines: one that hands out up to
	// this many messages (per partition or stream) before earlier ones are acked, so that they
	// can be handled in parallel; see the Pipelining capability. It replaces the backend's
	// configured window (on Kafka, kafka.consumer.max_in_flight). A driver that cannot pipeline
	// ignores it and does not declare Pipelining; combine it with Require(Pipelining) to fail
	// at start-up instead. Default: 0, the backend's configuration decides.
	MaxInFlight int
}

// Option sets one of the Options.
type Option func(*Options)

// WithConsumerGroup subscribes in the named consumer group instead of the configured one.
func WithConsumerGroup(group string) Option { return func(o *Options) { o.ConsumerGroup = group } }

// WithTemporaryGroup subscribes in the named consumer group and marks it as throwaway (see
// Options.TemporaryGroup). Use it for groups made up per run, never for a service's group.
func WithTemporaryGroup(group string) Option {
	return func(o *Options) { o.ConsumerGroup, o.TemporaryGroup = group, true }
}

// WithStartFrom sets where a new consumer group starts reading.
func WithStartFrom(s StartFrom) Option { return func(o *Options) { o.StartFrom = s } }

// WithStartAt makes a new consumer group start at the first message stamped at or after t;
// see Options.StartAt.
func WithStartAt(t time.Time) Option { return func(o *Options) { o.StartAt = t } }

// WithStartPosition makes a new consumer group start at the message with these coordinates;
// see Options.StartPosition.
func WithStartPosition(coordinates string) Option {
	return func(o *Options) { o.StartPosition = coordinates }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *Options) { o.Logger = l } }

// WithMaxInFlight asks for a pipelining subscriber with a window of n un-acked messages; see
// Options.MaxInFlight.
func WithMaxInFlight(n int) Option { return func(o *Options) { o.MaxInFlight = n } }

// WithCodec sets the codec Publish encodes event data with.
func WithCodec(c Codec) Option { return func(o *Options) { o.Codec = c } }

// Require makes Open fail with ErrNotSupported unless the backend provides every capability.
func Require(caps ...Capability) Option {
	return func(o *Options) { o.Require = append(o.Require, caps...) }
}

// Bus is an open connection to one backend: Watermill's publisher and subscriber for it, the
// capabilities it declares, and the event envelope on top.
//
// Publisher and Subscriber are safe for concurrent use. Delivery is at-least-once on every
// backend: a handler must tolerate seeing an event twice (deduplicate by event id).
type Bus struct {
	// Publisher publishes Watermill messages. Publish is the envelope-aware way to use it.
	Publisher message.Publisher
	// Subscriber subscribes in the bus's consumer group. Each message must be acked or nacked;
	// a nacked message is redelivered.
	Subscriber message.Subscriber

	backend string
	caps    Capabilities
	codec   Codec
	logger  *slog.Logger
	conn    *driver.Conn

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

// Open builds the bus that cfg describes: it looks up the driver named by cfg.Backend, decodes
// and validates that backend's section, and connects. Errors in the file name the file, line
// and key; a missing capability named by Require is an ErrNotSupported error.
func Open(ctx context.Context, cfg *config.Config, opts ...Option) (*Bus, error) {
	bc, err := BackendConfig(cfg)
	if err != nil {
		return nil, err
	}
	reg, _ := driver.Lookup(cfg.Backend)
	return open(ctx, reg, bc, opts)
}

// BackendConfig returns the selected backend's config struct (a pointer to the driver's type)
// decoded from cfg onto the driver's defaults and validated, without connecting: what
// `eventbus config validate` checks and `config print` shows.
func BackendConfig(cfg *config.Config) (any, error) {
	reg, err := driver.Lookup(cfg.Backend)
	if err != nil {
		return nil, cfg.WrapAt("backend", err)
	}
	bc := reg.DefaultConfig()
	if err := cfg.Section(cfg.Backend).Decode(bc); err != nil {
		return nil, err
	}
	return bc, nil
}

// OpenConfig is Open for a configuration built in code: backendCfg is a pointer to the driver's
// config struct (kafka.Config, redis.Config, ...), validated here if it has a Validate method.
func OpenConfig(ctx context.Context, backend string, backendCfg any, opts ...Option) (*Bus, error) {
	reg, err := driver.Lookup(backend)
	if err != nil {
		return nil, err
	}
	if v, ok := backendCfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s config: %w", backend, err)
		}
	}
	return open(ctx, reg, backendCfg, opts)
}

// Backends returns the names of the backends this program can open, sorted: those whose
// package it imports.
func Backends() []string { return driver.Backends() }

func open(ctx context.Context, reg driver.Registration, bc any, opts []Option) (*Bus, error) {
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Codec == nil {
		o.Codec = JSON
	}
	conn, err := reg.Open(ctx, bc, driver.Options{
		ConsumerGroup:  o.ConsumerGroup,
		StartFrom:      o.StartFrom,
		StartAt:        o.StartAt,
		StartPosition:  o.StartPosition,
		TemporaryGroup: o.TemporaryGroup,
		MaxInFlight:    o.MaxInFlight,
		Logger:         o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", reg.Name, err)
	}
	b := &Bus{
		Publisher:  conn.Publisher,
		Subscriber: conn.Subscriber,
		backend:    reg.Name,
		caps:       conn.Capabilities,
		codec:      o.Codec,
		logger:     o.Logger,
		conn:       conn,
		closed:     make(chan struct{}),
	}
	if err := b.Require(o.Require...); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return b, nil
}

// Backend is the name of the backend, e.g. "kafka".
func (b *Bus) Backend() string { return b.backend }

// Capabilities returns what the backend, as configured, guarantees.
func (b *Bus) Capabilities() Capabilities { return b.caps }

// Require returns an error wrapping ErrNotSupported, naming the backend and the capability, for
// the first of caps the backend lacks. Call it at start-up for what a service depends on.
func (b *Bus) Require(caps ...Capability) error { return b.caps.Require(b.backend, caps...) }

// Codec is the codec Publish encodes data with.
func (b *Bus) Codec() Codec { return b.codec }

// Logger is the logger the bus was opened with.
func (b *Bus) Logger() *slog.Logger { return b.logger }

// Publish sends events to topic, in order, and returns once the broker has acknowledged them as
// the backend's configuration requires (on Kafka, acks=all by default). Each event is checked
// and completed first (see NewMessage); none is sent if one is invalid. ctx travels with each
// message; whether a backend honours its cancellation is documented by the backend.
func (b *Bus) Publish(ctx context.Context, topic string, events ...Event) error {
	select {
	case <-b.closed:
		return fmt.Errorf("publish to %s: bus %w", topic, ErrClosed)
	default:
	}
	if topic == "" {
		return fmt.Errorf("publish: topic is empty: %w", ErrInvalidEvent)
	}
	msgs := make([]*message.Message, 0, len(events))
	for _, ev := range events {
		msg, err := NewMessage(ev, b.codec)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		msg.SetContext(ctx)
		msgs = append(msgs, msg)
	}
	if err := b.Publisher.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish to %s on %s: %w", topic, b.backend, err)
	}
	return nil
}

// As sets target to the backend's native client when the backend has one of that type (a
// sarama.Client, a redis.UniversalClient, an *amqp091.Connection) and reports whether it did.
// It is the escape hatch for what the portable API does not cover; code using it is no longer
// portable.
func (b *Bus) As(target any) bool {
	if b.conn.As == nil {
		return false
	}
	return b.conn.As(target)
}

// Close closes the subscriber (ending every subscription), then the publisher, then whatever
// the driver holds. It is safe to call more than once; later calls return the first result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		var errs []error
		if b.Subscriber != nil {
			errs = append(errs, b.Subscriber.Close())
		}
		if b.Publisher != nil {
			errs = append(errs, b.Publisher.Close())
		}
		if b.conn.Close != nil {
			errs = append(errs, b.conn.Close())
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// PartitionLag is how far the consumer group is behind on one partition, stream or queue.
type PartitionLag = driver.PartitionLag

// Lag asks the broker how far the bus's consumer group is behind on topic, one entry per
// partition (Kafka), stream (Redis) or queue (RabbitMQ). It fails with ErrNotSupported when the
// backend cannot tell, and with an error wrapping ErrUnavailable when the broker does not
// answer; a monitoring loop can use it as a reachability probe.
func (b *Bus) Lag(ctx context.Context, topic string) ([]PartitionLag, error) {
	if b.conn.Lag == nil {
		return nil, fmt.Errorf("lag of %s on %s: %w", topic, b.backend, ErrNotSupported)
	}
	select {
	case <-b.closed:
		return nil, fmt.Errorf("lag of %s: bus %w", topic, ErrClosed)
	default:
	}
	return b.conn.Lag(ctx, topic)
}
