package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPubSubPipelined runs Watermill's universal suite against the pipelined subscriber. It
// hands out records without waiting for acks, so the suite's total-order tests do not apply.
func TestPubSubPipelined(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	newPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		b, err := bus.OpenConfig(context.Background(), "kafka", brokertest.KafkaConfig(addr, group, 64, 1), bus.WithLogger(brokertest.Logger()))
		require.NoError(t, err)
		require.True(t, b.Capabilities().Pipelining)
		return b.Publisher, b.Subscriber
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   true,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  false,
			Persistent:                       true,
			NewSubscriberReceivesOldMessages: false,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) { return newPubSub(t, "test") },
		newPubSub,
	)
}

// TestPipelinedHandsOutBeforeAcksAndCommitsContiguously checks the two promises of the
// pipelined subscriber: every record of the window is handed out with none acked, and the
// committed offset never passes a record that is not acked, whatever order acks come in.
func TestPipelinedHandsOutBeforeAcksAndCommitsContiguously(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	topic := "pipelined-" + watermill.NewShortUUID()
	group := "g-" + watermill.NewShortUUID()
	b, err := bus.OpenConfig(context.Background(), "kafka", brokertest.KafkaConfig(addr, group, 8, 1), bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	for i := range 10 {
		require.NoError(t, b.Publish(context.Background(), topic, bus.Event{Type: "t", Source: "s", Key: "k", Data: json.RawMessage(fmt.Sprint(i))}))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	got := make([]*message.Message, 8)
	for i := range got {
		got[i] = bustest.Receive(t, ctx, msgs)
		pos, ok := bus.PositionOf(got[i])
		require.True(t, ok, "message %d has no position", i)
		assert.Equal(t, bus.Position{Backend: "kafka", Topic: topic, ConsumerGroup: group, Coordinates: kafka.Coordinates(0, int64(i))}, pos)
	}
	select {
	case m := <-msgs:
		t.Fatalf("a ninth record (%s) was handed out with a window of 8 and nothing acked", m.UUID)
	case <-time.After(300 * time.Millisecond): // proving an absence: nothing can signal it
	}

	// Ack 1..7 but not 0: nothing may be committed.
	for _, m := range got[1:] {
		m.Ack()
	}
	// The window frees only when the contiguous prefix advances, so no ninth record either.
	select {
	case m := <-msgs:
		t.Fatalf("record %s handed out while offset 0 holds the window", m.UUID)
	case <-time.After(300 * time.Millisecond):
	}
	// Nack offset 0: it comes back, in its own context, with its position.
	got[0].Nack()
	again := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, got[0].UUID, again.UUID)
	pos, ok := bus.PositionOf(again)
	require.True(t, ok, "a redelivered record keeps its position")
	assert.Equal(t, kafka.Coordinates(0, 0), pos.Coordinates)
	again.Ack()
	// Now 0..7 are done: the window slides, 8 and 9 arrive, and offset 8 is committed.
	m8, m9 := bustest.Receive(t, ctx, msgs), bustest.Receive(t, ctx, msgs)
	m9.Ack()
	require.Eventually(t, func() bool { return brokertest.KafkaCommittedOffset(t, addr, group, topic) == 8 }, 10*time.Second, 50*time.Millisecond,
		"offsets 0..7 acked: the commit must reach 8 and stop before the un-acked 8")
	m8.Ack()
	require.Eventually(t, func() bool { return brokertest.KafkaCommittedOffset(t, addr, group, topic) == 10 }, 10*time.Second, 50*time.Millisecond)
	cancel()
	for range msgs { // the channel closes once the subscription has drained
	}
}
