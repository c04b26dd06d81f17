package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// An entry written the way edx-event-bus-redis writes it (here with a raw XADD) is consumed
// like the bus's own, with every attribute intact.
func TestOpenEdXEntryReadThroughBus(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "enrollments"
	data := []byte{0x00, 0x01, 'a', 0xff} // Avro bytes in Open edX; passed untouched
	id, err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: []any{
		"type", "org.openedx.learning.course.enrollment.created.v1",
		"id", "5a8e2d1c-7b1f-4c3e-9d2a-0f6b8c4e1a2b",
		"source", "openedx/lms/web",
		"time", "2026-11-23T12:00:00.123456+00:00",
		"minorversion", "0",
		"sourcehost", "lms-7d9f",
		"sourcelib", "9.5.1",
		"event_data", data,
	}}).Result()
	require.NoError(t, err)

	cfg := testConfig(brokertest.RedisAddr)
	b, _ := openBus(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	m := bustest.Receive(t, ctx, msgs)

	assert.Equal(t, "5a8e2d1c-7b1f-4c3e-9d2a-0f6b8c4e1a2b", m.UUID)
	assert.Equal(t, data, []byte(m.Payload))
	assert.Empty(t, m.Metadata.Get(bus.HeaderInvalidReason))
	ev, err := bus.ParseEvent(m)
	require.NoError(t, err)
	assert.Equal(t, "5a8e2d1c-7b1f-4c3e-9d2a-0f6b8c4e1a2b", ev.ID)
	assert.Equal(t, "org.openedx.learning.course.enrollment.created.v1", ev.Type)
	assert.Equal(t, "openedx/lms/web", ev.Source)
	assert.True(t, time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC).Equal(ev.Time), "time %v", ev.Time)
	assert.Equal(t, map[string]string{"minorversion": "0", "sourcehost": "lms-7d9f", "sourcelib": "9.5.1"}, ev.Metadata)

	pos, ok := bus.PositionOf(m)
	require.True(t, ok, "the subscriber sets the entry's position on the message context")
	assert.Equal(t, bus.Position{Backend: "redis", Topic: topic, ConsumerGroup: cfg.ConsumerGroup, Coordinates: id}, pos)
	m.Ack()
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, pos.ConsumerGroup) == 0 }, 5*time.Second, 10*time.Millisecond)
}

// The bus's entries carry one field per attribute, readable with XRANGE and by Open edX.
func TestBusEntryFieldsWithXRange(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "enrollments"
	b, _ := openBus(t, testConfig(brokertest.RedisAddr))
	when := time.Date(2026, 11, 23, 12, 0, 0, 123456789, time.UTC)
	require.NoError(t, b.Publish(context.Background(), topic, bus.Event{
		ID: "evt-1", Type: "org.openedx.learning.course.enrollment.created.v1", Source: "openedx/lms/web",
		Subject: "course-v1:edX+DemoX", Time: when, Key: "user-42", Data: map[string]int{"user_id": 42},
		Metadata: map[string]string{"sourcehost": "lms-1", "sourcelib": "9.5.1", "minorversion": "0", "traceparent": "00-abc-def-01"},
	}))

	entries, err := c.XRange(context.Background(), topic, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, map[string]any{
		"id":              "evt-1",
		"type":            "org.openedx.learning.course.enrollment.created.v1",
		"source":          "openedx/lms/web",
		"time":            "2026-11-23T12:00:00.123456+00:00",
		"minorversion":    "0",
		"sourcehost":      "lms-1",
		"sourcelib":       "9.5.1",
		"event_data":      `{"user_id":42}`,
		"specversion":     "1.0",
		"datacontenttype": "application/json",
		"subject":         "course-v1:edX+DemoX",
		"partitionkey":    "user-42",
		"traceparent":     "00-abc-def-01",
	}, entries[0].Values)
}

func TestReservedMetadataKeyRefused(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "t"
	b, _ := openBus(t, testConfig(brokertest.RedisAddr))
	err := b.Publish(context.Background(), topic, bus.Event{Type: "t", Source: "s", Metadata: map[string]string{"event_data": "x"}})
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), `metadata key "event_data" is a reserved stream field`)
	// A raw Watermill message is checked the same way.
	msg := message.NewMessage("u1", nil)
	msg.Metadata.Set("partitionkey", "k")
	err = b.Publisher.Publish(topic, msg)
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), `"partitionkey"`)
	n, err := c.Exists(context.Background(), topic).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "nothing was written")
}

// An entry without an id is delivered, marked, never dropped; acking it clears it.
func TestEntryWithoutIDIsDeliveredMarkedInvalid(t *testing.T) {
	c := brokertest.Redis(t)
	topic := prefix(t, c) + "t"
	entryID, err := c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: []any{"type", "x", "event_data", "{}"}}).Result()
	require.NoError(t, err)
	_, err = c.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: []any{"id", "good", "type", "x", "source", "s", "event_data", "{}"}}).Result()
	require.NoError(t, err)

	b, sub := openBus(t, testConfig(brokertest.RedisAddr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	bad := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "redis:"+topic+"/"+entryID, bad.UUID)
	assert.Equal(t, `stream entry has no "id" field`, bad.Metadata.Get(bus.HeaderInvalidReason))
	assert.Equal(t, "x", bad.Metadata.Get(bus.HeaderType), "what the entry has is kept")
	bad.Ack()
	good := bustest.Receive(t, ctx, msgs)
	assert.Equal(t, "good", good.UUID)
	assert.Empty(t, good.Metadata.Get(bus.HeaderInvalidReason))
	good.Ack()
	assert.Equal(t, uint64(1), sub.Stats().Invalid)
	group := groupOf(t, c, topic)
	require.Eventually(t, func() bool { return pendingCount(t, c, topic, group) == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestReservedFieldsListed(t *testing.T) {
	assert.Equal(t, []string{"_watermill_message_uuid", "datacontenttype", "event_data", "id", "partitionkey",
		"source", "specversion", "subject", "time", "type"}, redisbackend.ReservedFields())
}

// groupOf returns the single consumer group on topic.
func groupOf(t testing.TB, c *goredis.Client, topic string) string {
	t.Helper()
	groups, err := c.XInfoGroups(context.Background(), topic).Result()
	require.NoError(t, err)
	require.Len(t, groups, 1)
	return groups[0].Name
}

func pendingCount(t testing.TB, c *goredis.Client, topic, group string) int64 {
	t.Helper()
	p, err := c.XPending(context.Background(), topic, group).Result()
	require.NoError(t, err)
	return p.Count
}
