package kafka_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestPublishManyKeepsOrder: a Publish of many events, sent as one batch, returns with every
// one acknowledged: a consumer then reads all of them, in the order given.
func TestPublishManyKeepsOrder(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	b := openBus(t, addr, bus.WithConsumerGroup("g-"+watermill.NewShortUUID()), bus.WithStartFrom(bus.StartOldest))
	topic := "batch-" + watermill.NewShortUUID()
	const n = 700
	evs := make([]bus.Event, n)
	for i := range evs {
		evs[i] = bus.Event{ID: strconv.Itoa(i), Type: "batch.v1", Source: "test", Key: "k", Data: []byte(strconv.Itoa(i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, b.Publish(ctx, topic, evs...))
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	for i := range n {
		m := bustest.Receive(t, ctx, msgs)
		require.Equal(t, strconv.Itoa(i), m.UUID, "record %d", i)
		m.Ack()
	}
}

// TestPublishManyNamesEachRefusedMessage: when the broker refuses events of a batch, the
// error is bus.ErrTooLarge, says how many of the batch failed and names each. (The broker
// judges a record batch as a whole, so a small event batched with a big one may fail too.)
func TestPublishManyNamesEachRefusedMessage(t *testing.T) {
	b, topic := busWithSmallTopic(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := b.Publish(ctx, topic, bustest.SizedEvent(t, "small-1", 200, recordBytes(topic)), bustest.SizedEvent(t, "big-1", 5000, recordBytes(topic)),
		bustest.SizedEvent(t, "small-2", 200, recordBytes(topic)), bustest.SizedEvent(t, "big-2", 5000, recordBytes(topic)))
	require.ErrorIs(t, err, bus.ErrTooLarge)
	require.ErrorIs(t, err, sarama.ErrMessageSizeTooLarge)
	assert.Regexp(t, `cannot produce [234] of 4 messages`, err.Error())
	assert.Contains(t, err.Error(), "message big-1: ")
	assert.Contains(t, err.Error(), "message big-2: ")
}
