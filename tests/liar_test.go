package tests

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// liar is a driver that opens a real backend and claims capabilities it does not have: the
// suite must catch it, which shows that a declared capability's check can fail.
type liar[C any] struct {
	real     string
	defaults func() *C
	claim    func(*driver.Capabilities)
}

func (l liar[C]) DefaultConfig() *C { return l.defaults() }

func (l liar[C]) Open(ctx context.Context, cfg *C, opts driver.Options) (*driver.Conn, error) {
	reg, err := driver.Lookup(l.real)
	if err != nil {
		return nil, err
	}
	conn, err := reg.Open(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	l.claim(&conn.Capabilities)
	return conn, nil
}

func init() {
	driver.Register("liar-redis", liar[redis.Config]{real: "redis", defaults: redis.DefaultConfig,
		claim: func(c *driver.Capabilities) { c.PerKeyOrdering = true }})
	driver.Register("liar-rabbitmq", liar[rabbitmq.Config]{real: "rabbitmq", defaults: rabbitmq.DefaultConfig,
		claim: func(c *driver.Capabilities) { c.Replay, c.ConsumerGroups = true, true }})
}

// TestSuiteCatchesFalseClaims: per-key ordering claimed by a pipelining Redis subscriber (a
// nacked message comes back after later ones), replay claimed by RabbitMQ quorum queues (a new
// group's queue starts empty) and consumer groups claimed with a single active consumer (one
// instance does all the work) each fail their check.
func TestSuiteCatchesFalseClaims(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, run string
		opts            []bus.Option
		fails           []string
	}{
		{"redis pipelined claims ordering", "backend: liar-redis\nliar-redis:\n  addrs: [" + brokertest.RedisAddr + "]\n  consumer: {nack_delay: 10ms}\n",
			"^PerKeyOrdering$", []bus.Option{bus.WithMaxInFlight(16)}, []string{"PerKeyOrdering"}},
		{"rabbitmq claims replay and shared groups", "", "^(Replay|ConsumerGroups)$", nil, []string{"ConsumerGroups", "Replay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.yaml
			var topic func(bustest.T) string
			if doc == "" {
				doc = "backend: liar-rabbitmq\nliar-rabbitmq:\n  vhost: " + brokertest.RabbitMQVhost(t) + "\n  queue: {single_active_consumer: true}\n"
			} else {
				client := brokertest.Redis(t)
				topic = func(t bustest.T) string {
					name := "eventbus-liar:" + watermill.NewShortUUID()
					t.Cleanup(func() { client.Del(context.Background(), name, name+".poison") })
					return name
				}
			}
			cfg, err := config.Parse("liar.yaml", []byte(doc))
			require.NoError(t, err)
			h := bustest.ConfigHarness(cfg)
			open := h.Open
			h.Open = func(ctx context.Context, group string, more ...bus.Option) (*bus.Bus, error) {
				return open(ctx, group, append(tc.opts, more...)...)
			}
			h.Topic = topic
			h.Timeout = 10 * time.Second
			sel, err := bustest.Select(tc.run)
			require.NoError(t, err)
			results := bustest.RunChecks(context.Background(), h, sel)
			require.Len(t, results, len(tc.fails))
			for i, r := range results {
				assert.Equal(t, tc.fails[i], r.Check)
				assert.Equal(t, bustest.Fail, r.Outcome, "%s: %s", r.Check, r.Detail)
				assert.True(t, r.Declared)
				assert.NotEmpty(t, r.Detail)
				t.Logf("%s fails as it should: %s", r.Check, r.Detail)
			}
		})
	}
}
