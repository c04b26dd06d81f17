package router_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/router"
)

// nopPublisher is the poison publisher of the chain benchmarks: nothing is poisoned there.
type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }

// BenchmarkChain measures what router.Chain costs per message, in process with no broker: a
// handler that does nothing, called bare and through the chain with the default router:
// section, and with the in-memory dedup store on top. Run it with
//
//	go test -run '^$' -bench Chain -benchmem ./router/
func BenchmarkChain(b *testing.B) {
	ev, err := bus.NewMessage(bus.Event{Type: "io.eventbus.bench.v1", Source: "bench", Data: []byte(`{"seq":1}`)}, nil)
	require.NoError(b, err)
	handler := func(*message.Message) ([]*message.Message, error) { return nil, nil }
	dedup := router.DefaultConfig()
	dedup.Dedup.Enabled = true
	for _, tc := range []struct {
		name  string
		cfg   *router.Config
		fresh bool // a new event id per message, as the dedup store sees in production
	}{
		{"bare", nil, false},
		{"default", func() *router.Config { c := router.DefaultConfig(); return &c }(), false},
		{"dedup-memory", &dedup, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := message.HandlerFunc(handler)
			if tc.cfg != nil {
				chain, release, err := router.Chain(*tc.cfg, nopPublisher{}, nil, brokertest.Logger())
				require.NoError(b, err)
				b.Cleanup(func() {
					for _, r := range release {
						_ = r()
					}
				})
				for i := len(chain) - 1; i >= 0; i-- {
					h = chain[i](h)
				}
			}
			ids := make([]string, 1024)
			for i := range ids {
				ids[i] = watermill.NewUUID()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				msg := ev.Copy()
				if tc.fresh {
					msg.UUID = ids[i%len(ids)] + string(rune('a'+i/len(ids)%26))
					msg.Metadata.Set(bus.HeaderID, msg.UUID)
				}
				i++
				if _, err := h(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
