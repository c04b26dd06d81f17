package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

func totalLag(t *testing.T, b *bus.Bus, topic string) (int64, bool) {
	parts, err := b.Lag(context.Background(), topic)
	if err != nil {
		return 0, false
	}
	var n int64
	for _, p := range parts {
		n += p.Lag
	}
	return n, true
}

// TestLagIsHighWatermarkMinusCommitted: per partition, lag is the records the group has not
// committed; before any commit, the records the partition retains; 0 once all are acked.
func TestLagIsHighWatermarkMinusCommitted(t *testing.T) {
	addr := brokertest.StartKafka(t, 2)
	b, err := bus.OpenConfig(context.Background(), "kafka", brokertest.KafkaConfig(addr, "lagging", 0, 2), bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	const topic = "lag"
	for i := range 10 {
		require.NoError(t, b.Publish(context.Background(), topic, bus.Event{Type: "t", Source: "s", Key: fmt.Sprint(i), Data: []byte("x")}))
	}
	parts, err := b.Lag(context.Background(), topic)
	require.NoError(t, err)
	require.Len(t, parts, 2)
	var sum int64
	for _, p := range parts {
		assert.Equal(t, "lagging", p.Group)
		assert.Equal(t, topic, p.Topic)
		assert.EqualValues(t, -1, p.Pending)
		sum += p.Lag
	}
	assert.EqualValues(t, 10, sum, "no commit yet: every retained record")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	for range 10 {
		select {
		case m := <-msgs:
			m.Ack()
		case <-time.After(20 * time.Second):
			t.Fatal("records not delivered")
		}
	}
	require.Eventually(t, func() bool { n, ok := totalLag(t, b, topic); return ok && n == 0 }, 20*time.Second, 50*time.Millisecond)
}

// TestLagAfterClose: a closed bus answers ErrClosed without asking the broker.
func TestLagAfterClose(t *testing.T) {
	cfg := brokertest.KafkaConfig(brokertest.StartKafka(t, 1), "g", 0, 1)
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	require.NoError(t, b.Close())
	_, err = b.Lag(context.Background(), "t")
	assert.ErrorIs(t, err, bus.ErrClosed)
}
