package schema

import (
	"context"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// Open edX's Kafka headers beyond the bus's envelope (edx-event-bus-kafka's utils.py).
const (
	HeaderDataContentType = "ce_datacontenttype"
	HeaderMinorVersion    = "ce_minorversion"
	HeaderSourceHost      = "sourcehost"
	HeaderSourceLib       = "sourcelib"
)

// kafkaPublisher writes records as Open edX's Kafka producer does: the value and the key in the
// registry's framing, and its headers.
type kafkaPublisher struct {
	next message.Publisher
	r    *resolver
}

// Publish frames every message and hands them on. A message whose type has no schema in the
// catalog is refused: an Open edX consumer could not read it. A message marked with
// bus.HeaderInvalidReason (one that could not be read, on its way to the poison topic) goes as
// it came, since its payload is not Avro of the catalog's schema.
func (p *kafkaPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, msg := range msgs {
		if msg.Metadata.Get(bus.HeaderInvalidReason) != "" {
			continue
		}
		ctx := msg.Context()
		eventType := msg.Metadata.Get(bus.HeaderType)
		value, err := p.r.encodeValue(ctx, topic, eventType, msg.Payload)
		if err != nil {
			return err
		}
		msg.Payload = value
		if key := msg.Metadata.Get(bus.HeaderKey); key != "" {
			k, err := p.r.encodeKey(ctx, topic, key)
			if err != nil {
				return err
			}
			// The Kafka backend writes this metadata as the record key, byte for byte.
			msg.Metadata.Set(bus.HeaderKey, string(k))
		}
		md := msg.Metadata
		md.Set(bus.HeaderContentType, ContentType)
		md.Set(HeaderDataContentType, ContentType)
		if t := md.Get(bus.HeaderTime); t != "" {
			md.Set(bus.HeaderTime, toPythonISO(t))
		}
		setDefault(md, HeaderMinorVersion, "0")
		setDefault(md, HeaderSourceHost, p.r.sourceHost)
		setDefault(md, HeaderSourceLib, p.r.sourceLib)
	}
	return p.next.Publish(topic, msgs...)
}

func setDefault(md message.Metadata, k, v string) {
	if v != "" && md.Get(k) == "" {
		md.Set(k, v)
	}
}

func (p *kafkaPublisher) Close() error { return p.next.Close() }

// kafkaSubscriber reads records as Open edX's Kafka consumer does: it removes the framing from
// value and key, resolving the writer's schema against the catalog's. A record that cannot be
// read is delivered marked with bus.HeaderInvalidReason (the poison middleware poisons it); one
// that cannot be read because the registry is unavailable is nacked, to come again.
type kafkaSubscriber struct {
	next   message.Subscriber
	r      *resolver
	logger *slog.Logger

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

func (s *kafkaSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.next.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		// Drain in until the subscriber closes it, so no message is left neither acked nor nacked.
		for msg := range in {
			if !s.unframe(ctx, topic, msg) {
				msg.Nack()
				continue
			}
			select {
			case out <- msg:
			case <-ctx.Done():
				msg.Nack()
			case <-s.closed:
				msg.Nack()
			}
		}
	}()
	return out, nil
}

// unframe rewrites msg in place; false when the registry could not be asked, so msg should come
// again later.
func (s *kafkaSubscriber) unframe(ctx context.Context, topic string, msg *message.Message) bool {
	if k := msg.Metadata.Get(bus.HeaderKey); k != "" {
		key, err := s.r.decodeKey(ctx, []byte(k))
		if err != nil && !isInvalid(err) {
			s.logger.Warn("schema registry unavailable; record nacked", "topic", topic, "message", msg.UUID, "error", err)
			return false
		}
		if err == nil {
			msg.Metadata.Set(bus.HeaderKey, key)
		} else {
			msg.Metadata.Set(bus.HeaderInvalidReason, "key: "+err.Error())
		}
	}
	value, err := s.r.decodeValue(ctx, msg.Metadata.Get(bus.HeaderType), msg.Payload)
	switch {
	case err == nil:
		msg.Payload = value
	case isInvalid(err):
		s.logger.Warn("record does not decode with its schema", "topic", topic, "message", msg.UUID, "error", err)
		msg.Metadata.Set(bus.HeaderInvalidReason, err.Error())
	default:
		s.logger.Warn("schema registry unavailable; record nacked", "topic", topic, "message", msg.UUID, "error", err)
		return false
	}
	return true
}

func (s *kafkaSubscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	err := s.next.Close()
	s.wg.Wait()
	return err
}
