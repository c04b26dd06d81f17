package middleware_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// Two consumer groups read one topic; a message redriven to billing reaches billing's handler
// only, shipping acks it unhandled, and a later ordinary message still reaches both (shipping's
// partition did not stall on the skipped one).
func TestRedriveFilterReachesOnlyTheNamedGroup(t *testing.T) {
	addr := startBroker(t, 1)
	topic := "invoices-" + watermill.NewShortUUID()
	handlers := map[string]*calls{}
	for _, group := range []string{"billing", "shipping"} {
		b := openBus(t, kafkaConfig(addr, group, 0, 1))
		r, err := router.New(b, fastConfig())
		require.NoError(t, err)
		c := newCalls()
		handlers[group] = c
		r.AddConsumerHandler("h-"+group, topic, b.Subscriber, func(m *message.Message) error { c.add(m); return nil })
		runRouter(t, r)
	}
	pub := openBus(t, kafkaConfig(addr, "", 0, 1))
	ctx := context.Background()
	require.NoError(t, pub.Publish(ctx, topic, bus.Event{ID: "evt-redriven", Type: "t.v1", Source: "s", Data: 1,
		Metadata: map[string]string{middleware.HeaderRedriveGroup: "billing", middleware.HeaderRedriveCount: "1"}}))
	require.NoError(t, pub.Publish(ctx, topic, bus.Event{ID: "evt-new", Type: "t.v1", Source: "s", Data: 2}))

	handlers["billing"].wait(t, 2)
	handlers["shipping"].wait(t, 1)
	ids := func(c *calls) []string {
		var out []string
		for _, m := range c.snapshot() {
			out = append(out, m.UUID)
		}
		return out
	}
	assert.Equal(t, []string{"evt-redriven", "evt-new"}, ids(handlers["billing"]))
	// evt-new is after evt-redriven in the partition: once shipping handled it, the redriven
	// message was behind it and skipped.
	assert.Equal(t, []string{"evt-new"}, ids(handlers["shipping"]))
}
