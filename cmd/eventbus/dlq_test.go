package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// TestDLQRoundTrip drives the dlq commands end to end on each backend that can hold a poison
// queue: a service poisons three events, an operator lists and shows them, redrives two after the
// fix (the service handles them with the same event ids and a redrive count of 1), and purges
// the last.
func TestDLQRoundTrip(t *testing.T) {
	const router = `router:
  retry: {max_attempts: 2, initial_interval: 10ms, max_interval: 20ms}
`
	t.Run("kafka", func(t *testing.T) {
		broker, err := embedded.Start(embedded.Options{})
		require.NoError(t, err)
		defer broker.Close()
		cfgPath := writeFile(t, "eventbus.yaml", fmt.Sprintf(`kafka:
  brokers: [%s]
  consumer_group: billing
  consumer: {session_timeout: 3s, heartbeat_interval: 500ms}
`, broker.Addrs()[0])+router)
		testDLQRoundTrip(t, cfgPath, func(topic string, i int) string {
			return regexp.QuoteMeta(fmt.Sprintf("kafka %s 0:%d (group billing)", topic, i-1))
		})
	})
	t.Run("rabbitmq", func(t *testing.T) {
		// The poison queue is the billing group's queue of the poison topic, declared when the
		// first message was poisoned; dlq reads it in that group, since a new group would see
		// nothing on RabbitMQ.
		cfgPath := rabbitmqConfig(t, "  consumer_group: billing\n"+router)
		testDLQRoundTrip(t, cfgPath, func(topic string, _ int) string {
			return regexp.QuoteMeta(fmt.Sprintf("rabbitmq %s billing.%s#", topic, topic)) + `\d+ \(group billing\)`
		})
	})
	t.Run("redis", func(t *testing.T) {
		c := brokertest.Redis(t)
		cfgPath := writeFile(t, "eventbus.yaml", redisCLIConfig+"  consumer_group: billing\n"+router)
		topic := testDLQRoundTrip(t, cfgPath, func(topic string, _ int) string {
			return regexp.QuoteMeta("redis "+topic+" ") + `\d+-\d+ \(group billing\)`
		})
		c.Del(context.Background(), topic, topic+".poison")
	})
}

// testDLQRoundTrip runs the round trip on the backend cfgPath selects and returns the topic it
// used; position matches the broker position the poison queue records for the i-th event.
func testDLQRoundTrip(t *testing.T, cfgPath string, position func(topic string, i int) string) string {
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := "invoices-" + watermill.NewShortUUID()

	// The service: it rejects every event while broken.
	b, err := bus.Open(ctx, cfg, bus.WithLogger(quietLogger()))
	require.NoError(t, err)
	defer b.Close()
	r, err := router.FromConfig(b, cfg)
	require.NoError(t, err)
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	handled := map[string]message.Metadata{}
	r.AddConsumerHandler("invoice-created", topic, b.Subscriber, func(m *message.Message) error {
		if broken.Load() {
			return middleware.Permanent(errors.New("tax service rejected the invoice"))
		}
		mu.Lock()
		handled[m.UUID] = m.Copy().Metadata
		mu.Unlock()
		return nil
	})
	routerDone := make(chan error, 1)
	go func() { routerDone <- r.Run(ctx) }()
	<-r.Running()
	defer func() { _ = r.Close(); <-routerDone }()
	for i := 1; i <= 3; i++ {
		require.NoError(t, b.Publish(ctx, topic, bus.Event{ID: fmt.Sprintf("evt-%d", i), Type: "invoice.created.v1", Source: "billing",
			Key: fmt.Sprintf("customer-%d", i), Data: map[string]int{"amount": i * 100}}))
	}

	dlq := func(args ...string) (int, string, string) {
		return cli(t, ctx, "", append(append([]string{"dlq"}, args...), "--config", cfgPath, "--topic", topic)...)
	}
	// list: waits until the three are poisoned (each run reads the whole queue, taking nothing).
	var out, errOut string
	require.Eventually(t, func() bool {
		var code int
		code, out, errOut = dlq("list")
		return code == 0 && strings.Contains(errOut, "3 of 3 messages")
	}, time.Minute, 100*time.Millisecond, "last output: %q %q", out, errOut)
	for i := 1; i <= 3; i++ {
		assert.Regexp(t, fmt.Sprintf(`evt-%d\s+customer-%d\s+permanent\s+invoice-created\s+billing\s+1\s+\S+\s+%s\s+0\s+tax service rejected`, i, i, position(topic, i)), out)
	}

	code, out, errOut := dlq("show", "--id", "evt-2", "--limit", "1")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, 1, strings.Count(out, "\n"), "one JSON line: %s", out)
	var rec dlqRecord
	require.NoError(t, json.Unmarshal([]byte(out), &rec))
	assert.Contains(t, errOut, "1 of 3 messages", "the summary goes to stderr")
	assert.Equal(t, "evt-2", rec.ID)
	assert.Equal(t, "customer-2", rec.Key)
	assert.Equal(t, "permanent", rec.Reason)
	assert.Equal(t, "tax service rejected the invoice", rec.Error)
	assert.Equal(t, topic, rec.Topic)
	assert.Equal(t, "billing", rec.Group)
	assert.Regexp(t, "^"+position(topic, 2)+"$", rec.Position)
	assert.JSONEq(t, `{"amount":200}`, string(rec.Payload))
	assert.Equal(t, "invoice.created.v1", rec.Headers[bus.HeaderType])

	code, out, errOut = dlq("list", "--reason", "parked", "--json")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, out, "no parked messages")

	code, out, errOut = dlq("redrive", "--id", "evt-1", "--dry-run")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, fmt.Sprintf("would redrive to %s (redrive 1) evt-1 (permanent, key \"customer-1\")", topic))
	assert.Contains(t, errOut, "dry run: 1 of 3 messages")

	// The fix is deployed; redrive two of them.
	broken.Store(false)
	code, _, errOut = dlq("redrive", "--id", "evt-1", "--id", "evt-2", "--reason", "permanent", "--progress", "always")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "redrove 2 of 3 messages")
	assert.Contains(t, errOut, "redriving", "the progress bar was drawn")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 2
	}, 30*time.Second, 50*time.Millisecond)
	mu.Lock()
	for _, id := range []string{"evt-1", "evt-2"} {
		md := handled[id]
		require.NotNil(t, md, "%s not handled after redrive", id)
		assert.Equal(t, id, md.Get(bus.HeaderID), "same event id")
		assert.Equal(t, "1", md.Get(middleware.HeaderRedriveCount))
		assert.Equal(t, "billing", md.Get(middleware.HeaderRedriveGroup), "addressed to the group that failed")
		assert.NotEmpty(t, md.Get(middleware.HeaderRedriveID))
		assert.Empty(t, md.Get(middleware.HeaderPoisonReason), "provenance is not sent back")
		assert.Equal(t, strings.Replace(id, "evt", "customer", 1), md.Get(bus.HeaderKey), "same key")
	}
	mu.Unlock()

	// evt-3 was not selected: it is still in the poison queue, alone.
	code, out, errOut = dlq("list")
	require.Equal(t, 0, code)
	assert.Contains(t, errOut, "1 of 1 messages")
	assert.Contains(t, out, "evt-3")

	code, _, errOut = dlq("purge")
	require.Equal(t, 1, code, "purge without a filter needs --all")
	assert.Contains(t, errOut, "pass --all")
	code, _, errOut = dlq("purge", "--all")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "purged 1 of 1 messages")
	code, _, errOut = dlq("list")
	require.Equal(t, 0, code)
	assert.Contains(t, errOut, "0 of 0 messages")
	mu.Lock()
	assert.NotContains(t, handled, "evt-3", "purged, never handled")
	mu.Unlock()
	return topic
}

func TestDLQRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "list", "--topic", "t", "--reason", "broken"}, `--reason "broken": want invalid, permanent, exhausted or parked`},
		{[]string{"dlq", "purge", "--topic", "t", "--since", "yesterday"}, `--since: "yesterday" is neither an RFC 3339 time`},
		{[]string{"dlq", "redrive"}, `required flag(s) "topic" not set`},
	} {
		code, _, errOut := cli(t, context.Background(), "", tc.args...)
		assert.Equal(t, 1, code, tc.args)
		assert.Contains(t, errOut, tc.want, tc.args)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
