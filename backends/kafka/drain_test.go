package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
)

// TestPipelinedCloseDrains: Close of the pipelined subscriber gives records already handed out
// drain_timeout to be acked, with their contexts alive, and commits what was acked meanwhile.
// Without the drain, Close would cancel a running handler at once and its ack would be lost:
// the record handled again by the next consumer.
func TestPipelinedCloseDrains(t *testing.T) {
	addr := startBroker(t)
	topic, group := "drain-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	cfg := pipelinedConfig(addr, group, 8)
	const drain = 2 * time.Second
	cfg.Consumer.DrainTimeout = drain
	b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(testLogger()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "held", Type: "t", Source: "s"}, bus.Event{ID: "acked", Type: "t", Source: "s"}))
	held, acked := receive(t, ctx, msgs), receive(t, ctx, msgs)
	require.Equal(t, "held", held.UUID)
	acked.Ack()

	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	// The held record's handler is still running: its context must stay alive through the
	// drain, and Close must wait for it, up to drain_timeout (a lower bound: no machine is
	// faster than a timer).
	require.NoError(t, <-closed)
	assert.GreaterOrEqual(t, time.Since(start), drain, "Close returned before drain_timeout with a record in flight")
	assert.ErrorIs(t, held.Context().Err(), context.Canceled, "after the drain the abandoned record's context is cancelled")
	assert.LessOrEqual(t, committed(t, addr, group, topic), int64(0), "nothing past the unacked record is committed")
}
