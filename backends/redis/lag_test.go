package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestLagFromXInfoGroups: before the group exists lag is the stream's length; read entries
// move from lag to pending, acked ones leave both; a stopped server is ErrUnavailable.
func TestLagFromXInfoGroups(t *testing.T) {
	srv := brokertest.StartRedisServer(t, brokertest.RedisServerOptions{})
	cfg := testConfig(srv.Addr())
	cfg.Consumer.ReadBatch = 2
	b, _ := openBus(t, cfg)
	stream := "lag"
	for range 5 {
		require.NoError(t, b.Publish(context.Background(), stream, bus.Event{Type: "t", Source: "s", Data: []byte("x")}))
	}
	parts, err := b.Lag(context.Background(), stream)
	require.NoError(t, err)
	require.Len(t, parts, 1)
	assert.Equal(t, bus.PartitionLag{Topic: stream, Group: cfg.ConsumerGroup, Partition: stream, Lag: 5}, parts[0])

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, stream)
	require.NoError(t, err)
	first := bustest.Receive(t, ctx, msgs)
	// One entry out, unacked: it (and whatever else was read ahead) is pending, not lag.
	require.Eventually(t, func() bool {
		p, err := b.Lag(context.Background(), stream)
		return err == nil && p[0].Pending >= 1 && p[0].Lag+p[0].Pending == 5
	}, 10*time.Second, 20*time.Millisecond)
	first.Ack()
	for range 4 {
		bustest.Receive(t, ctx, msgs).Ack()
	}
	require.Eventually(t, func() bool {
		p, err := b.Lag(context.Background(), stream)
		return err == nil && p[0].Lag == 0 && p[0].Pending == 0
	}, 10*time.Second, 20*time.Millisecond)

	srv.Kill()
	_, err = b.Lag(context.Background(), stream)
	assert.ErrorIs(t, err, bus.ErrUnavailable)
}
