package kafka_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestAcksReachTheBroker reads the acks field of the produce requests the broker receives, so
// that "acks: all" is what goes on the wire and not only what the config says: a producer that
// asked for fewer acks would still publish and consume fine, and lose acknowledged events when a
// leader fails.
func TestAcksReachTheBroker(t *testing.T) {
	for _, tc := range []struct {
		acks string
		want int16
	}{{"all", -1}, {"leader", 1}} {
		t.Run(tc.acks, func(t *testing.T) {
			cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1))
			require.NoError(t, err)
			defer cluster.Close()
			var mu sync.Mutex
			var seen []int16
			cluster.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
				cluster.KeepControl()
				mu.Lock()
				seen = append(seen, req.(*kmsg.ProduceRequest).Acks)
				mu.Unlock()
				return nil, nil, false // the broker handles it as usual
			})

			cfg := kafka.DefaultConfig()
			cfg.Brokers = cluster.ListenAddrs()
			cfg.Publisher.Acks = tc.acks
			b, err := bus.OpenConfig(context.Background(), "kafka", cfg, bus.WithLogger(brokertest.Logger()))
			require.NoError(t, err)
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := "acks-" + watermill.NewShortUUID()
			for i := range 3 {
				require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: watermill.NewShortUUID(), Type: "t", Source: "s", Data: i}))
			}
			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, seen, "no produce request reached the broker")
			for _, acks := range seen {
				assert.Equal(t, tc.want, acks, "acks: %s must put acks=%d on every produce request", tc.acks, tc.want)
			}
		})
	}
}
