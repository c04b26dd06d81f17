package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPipelinedCloseDrains: Close of the pipelined subscriber gives records already handed out
// drain_timeout to be acked, with their contexts alive, and commits what was acked meanwhile.
// Without the drain, Close would cancel a running handler at once and its ack would be lost:
// the record handled again by the next consumer.
func TestPipelinedCloseDrains(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	topic, group := "drain-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	cfg := brokertest.KafkaConfig(addr, group, 8, 1)
	const drain = 2 * time.Second
	cfg.Consumer.DrainTimeout = drain
	b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: "held", Type: "t", Source: "s"}, bus.Event{ID: "acked", Type: "t", Source: "s"}))
	held, acked := bustest.Receive(t, ctx, msgs), bustest.Receive(t, ctx, msgs)
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
	assert.LessOrEqual(t, brokertest.KafkaCommittedOffset(t, addr, group, topic), int64(0), "nothing past the unacked record is committed")
}

// TestPipelinedCommitsOnlyTheAckedPrefix reads the committed offset after Close, when every
// offset the subscriber marked has been committed: acks of later records must not commit past
// an earlier record that is not acked, or a crash would lose it.
func TestPipelinedCommitsOnlyTheAckedPrefix(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	topic, group := "prefix-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	cfg := brokertest.KafkaConfig(addr, group, 8, 1)
	cfg.Consumer.DrainTimeout = 100 * time.Millisecond
	b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	for i := range 4 {
		require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: fmt.Sprint("p-", i), Type: "t", Source: "s"}))
	}
	got := []*message.Message{bustest.Receive(t, ctx, msgs), bustest.Receive(t, ctx, msgs), bustest.Receive(t, ctx, msgs), bustest.Receive(t, ctx, msgs)}
	got[0].Ack()
	got[2].Ack()
	got[3].Ack() // offset 1 is not acked
	require.NoError(t, b.Close())
	assert.Equal(t, int64(1), brokertest.KafkaCommittedOffset(t, addr, group, topic), "only offset 0 is acked with all before it: the commit stops at 1")
}
