package middleware_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
)

// chanSubscriber hands out the messages put on its channel: a stand-in for a pipelining
// subscriber in a test of the ordering gate's own logic. Close ends the subscription, as a
// subscriber's Close does.
type chanSubscriber struct {
	ch   chan *message.Message
	once *sync.Once
}

func (s chanSubscriber) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	return s.ch, nil
}

func (s chanSubscriber) Close() error { s.once.Do(func() { close(s.ch) }); return nil }

func keyed(id, key string) *message.Message {
	m := message.NewMessage(id, nil)
	m.Metadata.Set(bus.HeaderKey, key)
	return m
}

// TestChainNackHoldsTheKey: when the router nacks a key's message, the same message comes back
// before the key's next one, and the nack does not reach the subscriber (which would redeliver
// it behind later messages, or commit past it).
func TestChainNackHoldsTheKey(t *testing.T) {
	cfg := middleware.DefaultOrderingConfig()
	cfg.Concurrency = 4
	cfg.RedeliveryDelay = time.Millisecond
	ord, err := middleware.NewOrdering(cfg, testLogger())
	require.NoError(t, err)
	src := chanSubscriber{ch: make(chan *message.Message, 4), once: &sync.Once{}}
	sub, err := ord.Decorate(src)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := sub.Subscribe(ctx, "orders")
	require.NoError(t, err)

	first, second := keyed("first", "k"), keyed("second", "k")
	src.ch <- first
	src.ch <- second
	next := func() *message.Message {
		t.Helper()
		select {
		case m := <-out:
			return m
		case <-ctx.Done():
			t.Fatal("nothing handed out")
			return nil
		}
	}
	m := next()
	require.Equal(t, "first", m.UUID)
	m.Nack()
	again := next()
	require.Equal(t, "first", again.UUID, "the nacked message comes back before the key's next one")
	select {
	case <-first.Nacked():
		t.Fatal("the chain's nack reached the subscriber")
	default:
	}
	again.Ack()
	select {
	case <-first.Acked():
	case <-ctx.Done():
		t.Fatal("the ack of the redelivered copy did not reach the subscriber")
	}
	then := next()
	assert.Equal(t, "second", then.UUID)
	then.Ack()
	require.NoError(t, sub.Close())
}
