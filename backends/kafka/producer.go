package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// syncPublisher sends with one Sarama SyncProducer, as watermill-kafka's publisher does, but a
// Publish of several messages goes out as one SendMessages batch instead of one synchronous
// send after another, which cost a round trip per message. It returns once the broker has
// acknowledged every message (at-least-once, as before), and names each message it did not.
// Order within a partition holds: the producer keeps one request in flight per broker
// (Net.MaxOpenRequests 1), retries included.
type syncPublisher struct {
	prod sarama.SyncProducer
}

func newSyncPublisher(brokers []string, sc *sarama.Config) (*syncPublisher, error) {
	prod, err := sarama.NewSyncProducer(brokers, sc)
	if err != nil {
		return nil, err // the caller says what it was connecting to; consumers read it too
	}
	return &syncPublisher{prod: prod}, nil
}

// Publish marshals every message first (none is sent if one fails), then sends them.
func (p *syncPublisher) Publish(topic string, msgs ...*message.Message) error {
	recs := make([]*sarama.ProducerMessage, len(msgs))
	for i, msg := range msgs {
		rec, err := marshaler{}.Marshal(topic, msg)
		if err != nil {
			return fmt.Errorf("cannot marshal message %s: %w", msg.UUID, err)
		}
		rec.Metadata = msg.UUID
		recs[i] = rec
	}
	switch len(recs) {
	case 0:
		return nil
	case 1:
		if _, _, err := p.prod.SendMessage(recs[0]); err != nil {
			return fmt.Errorf("cannot produce message %s: %w", msgs[0].UUID, err)
		}
		return nil
	}
	err := p.prod.SendMessages(recs)
	var perrs sarama.ProducerErrors
	if !errors.As(err, &perrs) {
		if err != nil {
			return fmt.Errorf("cannot produce %d messages: %w", len(recs), err)
		}
		return nil
	}
	errs := make([]error, len(perrs))
	for i, pe := range perrs {
		errs[i] = fmt.Errorf("message %v: %w", pe.Msg.Metadata, pe.Err)
	}
	return fmt.Errorf("cannot produce %d of %d messages: %w", len(perrs), len(recs), errors.Join(errs...))
}

func (p *syncPublisher) Close() error { return p.prod.Close() }
