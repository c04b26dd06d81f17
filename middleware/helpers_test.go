package middleware_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/router"
)

var (
	startBroker = brokertest.StartKafka
	testLogger  = brokertest.Logger
	kafkaConfig = brokertest.KafkaConfig
)

func openBus(t testing.TB, cfg *kafka.Config) *bus.Bus {
	t.Helper()
	return brokertest.OpenBus(t, kafka.Name, cfg)
}

// fastConfig is the router config for tests: quick retries without jitter, so backoff waits
// are predictable lower bounds.
func fastConfig() router.Config {
	c := router.DefaultConfig()
	c.CloseTimeout = 10 * time.Second
	c.Retry.InitialInterval = 20 * time.Millisecond
	c.Retry.MaxInterval = 200 * time.Millisecond
	c.Retry.Jitter = 0
	c.Ordering.RedeliveryDelay = 50 * time.Millisecond
	return c
}

// runRouter runs r until the test ends and waits until it is running.
func runRouter(t testing.TB, r *router.Router) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("router stopped before running: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("router did not start")
	}
	t.Cleanup(func() {
		_ = r.Close()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("router did not stop")
		}
	})
}

// readTopic reads n messages from topic in a fresh consumer group, acking each.
func readTopic(t testing.TB, addr, topic string, n int) []*message.Message {
	t.Helper()
	b := openBus(t, kafkaConfig(addr, "reader-"+watermill.NewShortUUID(), 0, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	var out []*message.Message
	for len(out) < n {
		select {
		case m := <-msgs:
			m.Ack()
			out = append(out, m)
		case <-ctx.Done():
			t.Fatalf("read %d of %d messages from %s", len(out), n, topic)
		}
	}
	return out
}

// calls records what a handler saw, safely across goroutines.
type calls struct {
	mu   sync.Mutex
	msgs []*message.Message
	at   []time.Time
	ch   chan struct{}
}

func newCalls() *calls { return &calls{ch: make(chan struct{}, 1<<16)} }

func (c *calls) add(m *message.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m.Copy())
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	c.ch <- struct{}{}
}

func (c *calls) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *calls) snapshot() []*message.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*message.Message(nil), c.msgs...)
}

// wait blocks until the handler has been called n times in all.
func (c *calls) wait(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for c.len() < n {
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("handler called %d times, want %d", c.len(), n)
		}
	}
}
