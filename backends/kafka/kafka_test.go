package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

func openBus(t *testing.T, addr string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, "kafka:\n  brokers: [%s]\n  consumer:\n    session_timeout: 3s\n    heartbeat_interval: 500ms\n", addr))
	require.NoError(t, err)
	b, err := bus.Open(context.Background(), cfg, append([]bus.Option{bus.WithLogger(brokertest.Logger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestEnvelopeAndKeyRoundTripOverTCP(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	b := openBus(t, addr)
	topic := "enrollments-" + watermill.NewShortUUID()

	when := time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC)
	err := b.Publish(context.Background(), topic,
		bus.Event{
			ID: "evt-1", Type: "org.openedx.learning.course.enrollment.created.v1", Source: "openedx/lms/web",
			Time: when, Key: "user-42", Data: map[string]any{"user_id": 42, "course": "demo"},
			Metadata: map[string]string{"traceparent": "00-abc-def-01"},
		},
		bus.Event{Type: "raw.v1", Source: "test", Data: []byte{0x00, 0xff, 0x10}},
	)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	first := bustest.Receive(t, ctx, msgs)
	ev, err := bus.ParseEvent(first)
	require.NoError(t, err)
	assert.Equal(t, "evt-1", ev.ID)
	assert.Equal(t, "evt-1", first.UUID)
	assert.Equal(t, "org.openedx.learning.course.enrollment.created.v1", ev.Type)
	assert.Equal(t, "openedx/lms/web", ev.Source)
	assert.Equal(t, "1.0", ev.SpecVersion)
	assert.Equal(t, "application/json", ev.ContentType)
	assert.True(t, when.Equal(ev.Time), "time %v", ev.Time)
	assert.Equal(t, "user-42", ev.Key)
	assert.Equal(t, map[string]string{"traceparent": "00-abc-def-01"}, ev.Metadata)
	var data struct {
		UserID int    `json:"user_id"`
		Course string `json:"course"`
	}
	require.NoError(t, ev.DecodeData(nil, &data))
	assert.Equal(t, 42, data.UserID)
	assert.Equal(t, "demo", data.Course)
	first.Ack()

	second := bustest.Receive(t, ctx, msgs)
	raw, err := bus.ParseEvent(second)
	require.NoError(t, err)
	assert.Equal(t, []byte{0x00, 0xff, 0x10}, []byte(second.Payload), "raw bytes pass untouched")
	assert.Empty(t, raw.ContentType)
	assert.Empty(t, raw.Key)
	assert.NotEmpty(t, raw.ID)
	second.Ack()
}

func TestPublishRejectsIncompleteEvent(t *testing.T) {
	b := openBus(t, brokertest.StartKafka(t, 1))
	err := b.Publish(context.Background(), "t", bus.Event{Source: "s"})
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "type (ce_type) is required")
	err = b.Publish(context.Background(), "t", bus.Event{Type: "x"})
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "source (ce_source) is required")
}

func TestCapabilities(t *testing.T) {
	b := openBus(t, brokertest.StartKafka(t, 1), bus.Require(bus.ConsumerGroups, bus.PerKeyOrdering, bus.Persistence, bus.Replay))
	assert.Equal(t, "kafka", b.Backend())

	cfg := kafka.DefaultConfig()
	cfg.Embedded = true
	_, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.Require(bus.Persistence), bus.WithLogger(brokertest.Logger()))
	require.ErrorIs(t, err, bus.ErrNotSupported)
	assert.Contains(t, err.Error(), "backend kafka: persistence")
}

func TestKeyPicksPartition(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	cfg, err := config.Parse("test.yaml", fmt.Appendf(nil, "kafka:\n  brokers: [%s]\n  topics: {partitions: 4}\n  consumer: {max_in_flight: 0}\n", addr))
	require.NoError(t, err)
	b, err := bus.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	topic := "keyed-" + watermill.NewShortUUID()
	for i := range 40 {
		require.NoError(t, b.Publish(context.Background(), topic, bus.Event{Type: "t", Source: "s", Key: fmt.Sprintf("k%d", i%4), Data: json.RawMessage(fmt.Sprint(i))}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	partitionOf := map[string]int32{}
	last := map[string]int{}
	for range 40 {
		m := bustest.Receive(t, ctx, msgs)
		key := m.Metadata.Get(bus.HeaderKey)
		p, ok := wkafkaPartition(m)
		require.True(t, ok)
		pos, ok := bus.PositionOf(m)
		require.True(t, ok, "Watermill's subscriber path records no bus.Position")
		assert.Equal(t, "kafka", pos.Backend)
		assert.Equal(t, topic, pos.Topic)
		assert.Equal(t, "eventbus", pos.ConsumerGroup)
		gotPartition, _, err := kafka.ParseCoordinates(pos.Coordinates)
		require.NoError(t, err)
		assert.Equal(t, p, gotPartition)
		if prev, seen := partitionOf[key]; seen {
			assert.Equal(t, prev, p, "key %s moved partitions", key)
		}
		partitionOf[key] = p
		var n int
		require.NoError(t, json.Unmarshal(m.Payload, &n))
		if prev, seen := last[key]; seen {
			assert.Greater(t, n, prev, "key %s out of order", key)
		}
		last[key] = n
		m.Ack()
	}
	require.Len(t, partitionOf, 4)
	used := map[int32]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	assert.Greater(t, len(used), 1, "four keys over four partitions all hashed to one: the key is not the record key")
}

// A temporary consumer group (bus.WithTemporaryGroup: the CLI's consume, the demo) is deleted
// when the subscriber closes, on both subscribers; a service's group stays.
func TestTemporaryGroupDeletedOnClose(t *testing.T) {
	for _, window := range []int{0, 8} {
		t.Run(fmt.Sprintf("max_in_flight=%d", window), func(t *testing.T) {
			addr := brokertest.StartKafka(t, 1)
			topic := "tmp-" + watermill.NewShortUUID()
			groups := func() map[string]string {
				admin, err := sarama.NewClusterAdmin([]string{addr}, sarama.NewConfig())
				require.NoError(t, err)
				defer admin.Close()
				gs, err := admin.ListConsumerGroups()
				require.NoError(t, err)
				return gs
			}
			consume := func(opts ...bus.Option) {
				b := openBus(t, addr, append(opts, bus.WithMaxInFlight(window))...)
				require.NoError(t, b.Publish(context.Background(), topic, bus.Event{ID: watermill.NewShortUUID(), Type: "t", Source: "s"}))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				msgs, err := b.Subscriber.Subscribe(ctx, topic)
				require.NoError(t, err)
				select {
				case m := <-msgs:
					m.Ack()
				case <-ctx.Done():
					t.Fatal("no message")
				}
				require.NoError(t, b.Close())
			}
			consume(bus.WithTemporaryGroup("eventbus-cli-tmp"), bus.WithStartFrom(bus.StartOldest))
			assert.NotContains(t, groups(), "eventbus-cli-tmp")
			consume(bus.WithConsumerGroup("service"), bus.WithStartFrom(bus.StartOldest))
			assert.Contains(t, groups(), "service")
		})
	}
}
