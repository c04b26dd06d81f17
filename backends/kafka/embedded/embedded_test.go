package embedded_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

func openBus(t *testing.T, addr, group string) *bus.Bus {
	t.Helper()
	cfg := kafka.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.ConsumerGroup = group
	cfg.Consumer.SessionTimeout = 3 * time.Second
	cfg.Consumer.HeartbeatInterval = 500 * time.Millisecond
	b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	return b
}

// TestDataDirSurvivesRestart is `eventbus dev --data-dir`: records and a group's committed
// offset written before a restart are there after it.
func TestDataDirSurvivesRestart(t *testing.T) {
	dir, port := t.TempDir(), brokertest.FreePort(t)
	broker, err := embedded.Start(embedded.Options{Port: port, DataDir: dir})
	require.NoError(t, err)
	addr := broker.Addrs()[0]

	b := openBus(t, addr, "g1")
	for _, id := range []string{"e1", "e2", "e3"} {
		require.NoError(t, b.Publish(context.Background(), "persisted", bus.Event{ID: id, Type: "t", Source: "s"}))
	}
	// g1 consumes and commits e1 only.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, "persisted")
	require.NoError(t, err)
	first := <-msgs
	require.Equal(t, "e1", first.UUID)
	first.Ack()
	require.NoError(t, b.Close())
	require.NoError(t, broker.Close())

	broker, err = embedded.Start(embedded.Options{Port: port, DataDir: dir})
	require.NoError(t, err)
	defer broker.Close()
	assert.Equal(t, addr, broker.Addrs()[0])

	b = openBus(t, addr, "g1")
	defer b.Close()
	msgs, err = b.Subscriber.Subscribe(ctx, "persisted")
	require.NoError(t, err)
	var got []string
	for len(got) < 2 {
		select {
		case m := <-msgs:
			got = append(got, m.UUID)
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("after restart got %v, want e2 and e3", got)
		}
	}
	assert.Equal(t, []string{"e2", "e3"}, got, "g1 resumes after its committed offset")
}
