package middleware_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/middleware"
)

// The poison middleware's verdicts, called directly with a publisher that can be made to fail:
// pure logic, no broker. A nil error from the middleware means "ack"; it may say so only when
// the message was handled or stored.

type flakyPublisher struct {
	mu        sync.Mutex
	fail      bool
	published []*message.Message
}

func (p *flakyPublisher) Publish(_ string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("poison topic unreachable")
	}
	p.published = append(p.published, msgs...)
	return nil
}

func (p *flakyPublisher) Close() error { return nil }

func (p *flakyPublisher) setFail(v bool) { p.mu.Lock(); p.fail = v; p.mu.Unlock() }

func (p *flakyPublisher) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.published) }

// consumed returns a message as a subscriber would hand it to the router: with a topic and a
// position on its context.
func consumed(ctx context.Context, id, key string) *message.Message {
	m := message.NewMessage(id, []byte(`{}`))
	m.Metadata.Set(bus.HeaderKey, key)
	m.SetContext(driver.ContextWithPosition(ctx, driver.Position{Backend: "kafka", Topic: "orders", ConsumerGroup: "g", Coordinates: "0:1"}))
	return m
}

func poisonWith(t *testing.T, pub message.Publisher, policy middleware.OnPoisoned) message.HandlerMiddleware {
	t.Helper()
	cfg := middleware.DefaultPoisonConfig()
	cfg.OnPoisoned = policy
	p, err := middleware.NewPoison(pub, cfg, testLogger())
	require.NoError(t, err)
	return p
}

func TestInvalidMessageIsNotAckedWhenItCannotBeStored(t *testing.T) {
	pub := &flakyPublisher{fail: true}
	h := poisonWith(t, pub, middleware.Skip)(func(*message.Message) ([]*message.Message, error) {
		t.Error("a flagged message must not reach the handler")
		return nil, nil
	})
	m := consumed(context.Background(), "bad-1", "k")
	m.Metadata.Set(bus.HeaderInvalidReason, "no ce_type")
	_, err := h(m)
	require.ErrorIs(t, err, middleware.ErrPoisonPublish, "the router must nack it: it is neither handled nor stored")

	pub.setFail(false)
	_, err = h(m)
	require.NoError(t, err, "stored: now it may be acked")
	assert.Equal(t, 1, pub.count())
}

func TestParkedMessageIsNotAckedWhenItCannotBeStored(t *testing.T) {
	pub := &flakyPublisher{}
	h := poisonWith(t, pub, middleware.Park)(func(m *message.Message) ([]*message.Message, error) {
		return nil, middleware.Permanent(errors.New("rejected " + m.UUID))
	})
	_, err := h(consumed(context.Background(), "first", "k"))
	require.NoError(t, err, "the first message is stored and acked")
	require.Equal(t, 1, pub.count())

	pub.setFail(true)
	_, err = h(consumed(context.Background(), "second", "k"))
	require.ErrorIs(t, err, middleware.ErrPoisonPublish, "the parked message could not be stored: it must be nacked")
}

func TestShutdownLeavesTheMessageForRedelivery(t *testing.T) {
	pub := &flakyPublisher{}
	ctx, cancel := context.WithCancel(context.Background())
	h := poisonWith(t, pub, middleware.Skip)(func(m *message.Message) ([]*message.Message, error) {
		cancel() // the consumer shuts down while the handler runs
		return nil, m.Context().Err()
	})
	_, err := h(consumed(ctx, "interrupted", "k"))
	require.ErrorIs(t, err, context.Canceled, "an interrupted message is nacked, for the next consumer")
	assert.Equal(t, 0, pub.count(), "an interrupted message is not poisoned")
}
