package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestFaults stops and starts the RabbitMQ application of a private node (never the shared one)
// under publishers and consumers. It runs with -race like every test: the driver's own
// connection handling must not trip it where watermill-amqp v3.1.0's ConnectionWrapper does
// (its connected field is written by the reconnect goroutine and read by Publish unlocked).
func TestFaults(t *testing.T) {
	n := brokertest.StartRabbitMQ(t)

	// Defect 3: a Publish while the broker is down waits for it (with backoff) instead of
	// failing at once with "not connected", and succeeds once it is back.
	t.Run("PublishRidesOutRestart", func(t *testing.T) {
		cfg := testConfig(n.URL())
		b := openBackend(t, cfg)
		topic := uniqueTopic("restart")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		msgs, err := b.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)

		n.StopApp(t)
		result := make(chan error, 1)
		go func() { result <- b.Publish(ctx, topic, bus.Event{ID: "during-outage", Type: "t", Source: "s"}) }()
		select {
		case err := <-result:
			t.Fatalf("Publish returned while the broker was down: %v", err)
		case <-time.After(time.Second):
		}
		n.StartApp(t)
		require.NoError(t, <-result)
		m := bustest.Receive(t, ctx, msgs)
		assert.Equal(t, "during-outage", m.UUID)
		m.Ack()
	})

	t.Run("PublishGivesUpAtDeadlineWithClearError", func(t *testing.T) {
		cfg := testConfig(n.URL())
		cfg.Publisher.Timeout = 1500 * time.Millisecond
		cfg.Publisher.DeclareGroups = []string{cfg.ConsumerGroup}
		b := openBackend(t, cfg)
		topic := uniqueTopic("deadline")
		require.NoError(t, b.Publish(context.Background(), topic, bus.Event{Type: "t", Source: "s"}))

		n.StopApp(t)
		defer n.StartApp(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := b.Publish(ctx, topic, bus.Event{ID: "too-late", Type: "t", Source: "s"})
		require.Error(t, err)
		assert.Less(t, time.Since(start), 10*time.Second, "Publish must give up at its deadline")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, rabbitmq.ErrNotConnected)
		assert.ErrorIs(t, err, bus.ErrUnavailable, "the portable class of an outage")
		assert.Contains(t, err.Error(), "message too-late")
		assert.Contains(t, err.Error(), "not confirmed after")

		// Without a deadline on the context, publisher.timeout bounds the wait.
		err = b.Publish(context.Background(), topic, bus.Event{ID: "no-deadline", Type: "t", Source: "s"})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, bus.ErrUnavailable)
		assert.Contains(t, err.Error(), "publisher.timeout 1.5s elapsed")
	})

	// Publishers and a consumer run while the broker's application stops and starts twice.
	// Every message whose Publish returned nil must be handled: lost must be 0. Duplicates are
	// allowed (at-least-once) and reported.
	t.Run("StopStartMidStream", func(t *testing.T) {
		cfg := testConfig(n.URL())
		cfg.ConsumerGroup = "midstream"
		pub := openBackend(t, cfg)
		sub := openBackend(t, cfg)
		topic := uniqueTopic("midstream")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		msgs, err := sub.Subscriber.Subscribe(ctx, topic)
		require.NoError(t, err)

		var mu sync.Mutex
		handled := map[string]int{}
		go func() {
			for m := range msgs {
				mu.Lock()
				handled[m.UUID]++
				mu.Unlock()
				m.Ack()
			}
		}()

		const publishers, perPublisher = 4, 500
		var published sync.Map
		var confirmed atomic.Int64
		var failed []error
		var failedMu sync.Mutex
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perPublisher {
					id := fmt.Sprintf("p%d-%04d", p, i)
					pctx, pcancel := context.WithTimeout(ctx, time.Minute)
					err := pub.Publish(pctx, topic, bus.Event{ID: id, Type: "t", Source: "s"})
					pcancel()
					if err != nil {
						failedMu.Lock()
						failed = append(failed, err)
						failedMu.Unlock()
						continue
					}
					published.Store(id, true)
					confirmed.Add(1)
				}
			}()
		}
		for _, at := range []int64{400, 1200} {
			require.Eventually(t, func() bool { return confirmed.Load() >= at }, time.Minute, 10*time.Millisecond)
			n.StopApp(t)
			n.StartApp(t)
		}
		wg.Wait()
		require.Empty(t, failed, "no Publish may fail with a minute to ride out each restart")

		var want []string
		published.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
		lost := func() (lost, dups, total int) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range want {
				if handled[id] == 0 {
					lost++
				}
			}
			for _, c := range handled {
				total += c
				if c > 1 {
					dups += c - 1
				}
			}
			return
		}
		require.Eventually(t, func() bool { l, _, _ := lost(); return l == 0 }, 2*time.Minute, 50*time.Millisecond,
			"every confirmed message must be handled")
		l, dups, total := lost()
		t.Logf("published %d, handled %d deliveries, lost %d, duplicated %d", len(want), total, l, dups)
		assert.Equal(t, publishers*perPublisher, len(want))
		assert.Zero(t, l)
	})

	t.Run("CloseInterruptsWaitingPublish", func(t *testing.T) {
		cfg := testConfig(n.URL())
		cfg.Publisher.DeclareGroups = []string{cfg.ConsumerGroup}
		b, err := bus.OpenConfig(context.Background(), rabbitmq.Name, cfg, bus.WithLogger(brokertest.Logger()))
		require.NoError(t, err)
		topic := uniqueTopic("closing")
		require.NoError(t, b.Publish(context.Background(), topic, bus.Event{Type: "t", Source: "s"}))
		n.StopApp(t)
		defer n.StartApp(t)
		result := make(chan error, 1)
		go func() {
			result <- b.Publisher.Publish(topic, message.NewMessage("interrupted", nil))
		}()
		select {
		case err := <-result:
			t.Fatalf("Publish returned while the broker was down: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
		require.NoError(t, b.Close())
		err = <-result
		require.Error(t, err)
		assert.True(t, errors.Is(err, rabbitmq.ErrPublisherClosed), "%v", err)
		assert.ErrorIs(t, err, bus.ErrClosed, "closed, not unavailable, is what the caller must hear")
		assert.Contains(t, err.Error(), "message interrupted")
	})
}
