package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// dlqBackend is one backend the dlq tests run on: a config file whose consumer group is
// billing, a fresh topic name, and a way to tell whether the broker holds a topic (Kafka
// topic, Redis stream, billing's RabbitMQ queue) without creating it.
type dlqBackend struct {
	name   string
	cfg    string
	topic  string
	exists func(t *testing.T, topic string) bool
}

const dlqRouterYAML = "router:\n  retry: {max_attempts: 2, initial_interval: 10ms, max_interval: 20ms}\n"

// forEachDLQBackend runs test on Kafka (embedded), the shared Redis and a RabbitMQ vhost.
func forEachDLQBackend(t *testing.T, test func(t *testing.T, be dlqBackend)) {
	t.Run("kafka", func(t *testing.T) {
		addr := brokertest.StartKafka(t, 1)
		test(t, dlqBackend{name: "kafka", topic: "invoices-" + watermill.NewShortUUID(),
			cfg: writeFile(t, "eventbus.yaml", brokertest.KafkaYAML(addr)+"  consumer_group: billing\n"+dlqRouterYAML),
			exists: func(t *testing.T, topic string) bool {
				admin, err := sarama.NewClusterAdmin([]string{addr}, sarama.NewConfig())
				require.NoError(t, err)
				defer admin.Close()
				topics, err := admin.ListTopics()
				require.NoError(t, err)
				_, ok := topics[topic]
				return ok
			}})
	})
	t.Run("redis", func(t *testing.T) {
		c := brokertest.Redis(t)
		topic := brokertest.RedisStream(t, "eventbus-test-dlq")
		test(t, dlqBackend{name: "redis", topic: topic,
			cfg: writeFile(t, "eventbus.yaml", redisCLIConfig+"  consumer_group: billing\n"+dlqRouterYAML),
			exists: func(t *testing.T, topic string) bool {
				n, err := c.Exists(context.Background(), topic).Result()
				require.NoError(t, err)
				return n == 1
			}})
	})
	t.Run("rabbitmq", func(t *testing.T) {
		vhost := brokertest.RabbitMQVhost(t)
		test(t, dlqBackend{name: "rabbitmq", topic: "invoices-" + watermill.NewShortUUID(),
			cfg: writeFile(t, "eventbus.yaml", fmt.Sprintf("backend: rabbitmq\nrabbitmq:\n  vhost: %s\n  consumer_group: billing\n  publisher: {declare_groups: [billing]}\n", vhost)+dlqRouterYAML),
			exists: func(t *testing.T, topic string) bool {
				conn, err := amqp.Dial(brokertest.RabbitMQURL(vhost))
				require.NoError(t, err)
				defer conn.Close()
				ch, err := conn.Channel()
				require.NoError(t, err)
				_, err = ch.QueueDeclarePassive("billing."+topic, false, false, false, false, nil)
				var ae *amqp.Error
				if errors.As(err, &ae) && ae.Code == amqp.NotFound {
					return false
				}
				require.NoError(t, err)
				return true
			}})
	})
}

// failingService runs a service in group billing whose handler rejects every event, counting
// the calls per event id, until the test ends.
func failingService(t *testing.T, ctx context.Context, be dlqBackend) (*bus.Bus, func(id string) int) {
	cfg, err := config.Load(be.cfg)
	require.NoError(t, err)
	b, err := bus.Open(ctx, cfg, bus.WithLogger(quietLogger()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	r, err := router.FromConfig(b, cfg)
	require.NoError(t, err)
	var mu sync.Mutex
	calls := map[string]int{}
	r.AddConsumerHandler("invoice-created", be.topic, b.Subscriber, func(m *message.Message) error {
		mu.Lock()
		calls[m.UUID]++
		mu.Unlock()
		return middleware.Permanent(errors.New("tax service still down"))
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()
	t.Cleanup(func() { _ = r.Close(); <-done })
	return b, func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[id]
	}
}

// The handler still fails: a redrive run sends each poisoned message back once, stops at the
// end of the queue as it found it (the copies poisoned again wait for the next run), and
// --max-redrives holds back what was redriven that often. --id takes a unique prefix.
func TestDLQRedriveWithFailingHandlerRedrivesOncePerRun(t *testing.T) {
	forEachDLQBackend(t, func(t *testing.T, be dlqBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		b, calls := failingService(t, ctx, be)
		ids := []string{"ord-a1x", "ord-b2x", "ord-b2y"}
		for _, id := range ids {
			require.NoError(t, b.Publish(ctx, be.topic, bus.Event{ID: id, Type: "invoice.created.v1", Source: "billing", Key: id, Data: 1}))
		}
		dlq := func(args ...string) (int, string, string) {
			return cli(t, ctx, "", append(append([]string{"dlq"}, args...), "--config", be.cfg, "--topic", be.topic)...)
		}
		redriveCounts := func() map[string]int {
			code, out, _ := dlq("list", "--json")
			if code != 0 {
				return nil
			}
			got := map[string]int{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var rec dlqRecord
				if json.Unmarshal([]byte(line), &rec) == nil {
					got[rec.ID] = rec.RedriveCount
				}
			}
			return got
		}
		require.Eventually(t, func() bool { return len(redriveCounts()) == 3 }, time.Minute, 100*time.Millisecond)

		code, _, errOut := dlq("redrive")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "redrove 3 of 3 messages")
		// Each message was handled once more and poisoned again, with its redrive counted.
		want := map[string]int{"ord-a1x": 1, "ord-b2x": 1, "ord-b2y": 1}
		require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, redriveCounts()) }, time.Minute, 100*time.Millisecond)
		for _, id := range ids {
			assert.Equal(t, 2, calls(id), "%s: the first delivery and one redrive", id)
		}

		code, _, errOut = dlq("redrive", "--max-redrives", "1")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "redrove 0 of 3 messages")
		assert.Contains(t, errOut, "3 left in the queue, redriven 1 times already (--max-redrives)")

		code, _, errOut = dlq("show", "--id", "ord-b2")
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, `--id "ord-b2" is ambiguous: it starts the ids ord-b2x, ord-b2y`)
		code, out, errOut := dlq("show", "--id", "ord-a")
		require.Equal(t, 0, code, errOut)
		var rec dlqRecord
		require.NoError(t, json.Unmarshal([]byte(out), &rec), "one JSON line: %s", out)
		assert.Equal(t, "ord-a1x", rec.ID)
		assert.Equal(t, 1, rec.RedriveCount)

		code, _, errOut = dlq("redrive", "--id", "ord-a")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "redrove 1 of 3 messages")
		want["ord-a1x"] = 2
		require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, redriveCounts()) }, time.Minute, 100*time.Millisecond)
		assert.Equal(t, 3, calls("ord-a1x"))
		assert.Equal(t, 2, calls("ord-b2x"))
	})
}

// Read-only commands create nothing: a mistyped topic is reported as unknown and leaves no
// topic, stream or queue behind; a topic without a poison queue answers at once with nothing.
func TestDLQReadOnlyCommandsCreateNothing(t *testing.T) {
	forEachDLQBackend(t, func(t *testing.T, be dlqBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		typo := be.topic + "-typo"
		for _, cmd := range []string{"list", "show", "redrive", "purge"} {
			code, out, errOut := cli(t, ctx, "", "dlq", cmd, "--config", be.cfg, "--topic", typo, "--all")
			if cmd != "purge" {
				code, out, errOut = cli(t, ctx, "", "dlq", cmd, "--config", be.cfg, "--topic", typo)
			}
			assert.Equal(t, 1, code, cmd)
			assert.Empty(t, out, cmd)
			assert.Contains(t, errOut, "no such topic "+typo, cmd)
		}
		for _, topic := range []string{typo, typo + ".poison"} {
			assert.False(t, be.exists(t, topic), "%s was created", topic)
		}

		code, _, errOut := cli(t, ctx, "", "publish", "--config", be.cfg, "--topic", be.topic, "--type", "t.v1", "--source", "s", "--data", "{}")
		require.Equal(t, 0, code, errOut)
		require.True(t, be.exists(t, be.topic))
		code, out, errOut := cli(t, ctx, "", "dlq", "list", "--config", be.cfg, "--topic", be.topic)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "0 of 0 messages in "+be.topic+".poison")
		assert.False(t, slices.Contains(strings.Fields(out), "ERROR"), "no table for an empty queue: %s", out)
		assert.False(t, be.exists(t, be.topic+".poison"), "list created the poison queue")
	})
}

// A redrive run that stopped between sending a message back and removing its record (killed,
// or the broker went away) leaves the record, and the copy it sent fails again and comes back
// poisoned. The next run redrives the message once, not twice: the copy names the record it
// was redriven from (eventbus_redrive_id), so the run removes it as a duplicate.
func TestDLQRedriveAfterAnInterruptedRunRedrivesOnce(t *testing.T) {
	forEachDLQBackend(t, func(t *testing.T, be dlqBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		b, calls := failingService(t, ctx, be)
		require.NoError(t, b.Publish(ctx, be.topic, bus.Event{ID: "ord-1", Type: "invoice.created.v1", Source: "billing", Key: "k", Data: 1}))
		dlq := func(args ...string) (int, string, string) {
			return cli(t, ctx, "", append(append([]string{"dlq"}, args...), "--config", be.cfg, "--topic", be.topic)...)
		}
		queued := func(n int) func() bool {
			return func() bool {
				code, _, errOut := dlq("list")
				return code == 0 && strings.Contains(errOut, fmt.Sprintf("%d of %d messages", n, n))
			}
		}
		require.Eventually(t, queued(1), time.Minute, 100*time.Millisecond)

		// The interrupted run: the record is read and its redriven copy sent, nothing removed.
		f := &dlqFlags{topic: be.topic, poisonTopic: be.topic + ".poison"}
		q, err := openPoisonQueue(ctx, b, f, dlqList)
		require.NoError(t, err)
		n, err := q.Open(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, q.Scan(ctx, false, func(rec bus.PoisonRecord) (bus.PoisonDecision, error) {
			m := poisoned{msg: rec.Msg}
			m.prov, m.err = middleware.ParseProvenance(rec.Msg)
			require.NoError(t, m.err)
			require.NoError(t, b.Publisher.Publish(be.topic, redriven(m, rec.Position)))
			return dlqKeep, nil
		}))
		require.NoError(t, q.Close())
		require.Eventually(t, queued(2), time.Minute, 100*time.Millisecond, "the copy failed again")
		require.Equal(t, 2, calls("ord-1"))

		code, _, errOut := dlq("redrive")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "redrove 1 of 2 messages")
		assert.Contains(t, errOut, "1 duplicate copies removed without redriving")
		require.Eventually(t, func() bool { return calls("ord-1") == 3 }, time.Minute, 50*time.Millisecond)
		require.Eventually(t, queued(1), time.Minute, 100*time.Millisecond, "one copy back in the poison queue")
		code, out, errOut := dlq("show")
		require.Equal(t, 0, code, errOut)
		var rec dlqRecord
		require.NoError(t, json.Unmarshal([]byte(out), &rec), out)
		// The run redrove the record it met first and removed the other as its duplicate: the
		// one the interrupted run left (count 0) or the copy that came back (count 1), as the
		// queue orders them (a RabbitMQ quorum queue may put a requeued message behind).
		assert.Contains(t, []int{1, 2}, rec.RedriveCount)
		assert.Equal(t, 3, calls("ord-1"), "redriven once by the second run")
	})
}

// poisonRecords appends n records to the poison topic of be.topic as the poison middleware
// writes them, of group billing; even ones permanent, odd ones exhausted.
func poisonRecords(t *testing.T, ctx context.Context, be dlqBackend, n int) {
	cfg, err := config.Load(be.cfg)
	require.NoError(t, err)
	b, err := bus.Open(ctx, cfg, bus.WithLogger(quietLogger()))
	require.NoError(t, err)
	defer b.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var batch []*message.Message
	for i := range n {
		m := message.NewMessage(fmt.Sprintf("evt-%05d", i), []byte(`{}`))
		reason := middleware.ReasonPermanent
		if i%2 == 1 {
			reason = middleware.ReasonExhausted
		}
		for k, v := range map[string]string{
			bus.HeaderID: m.UUID, bus.HeaderType: "t.v1", bus.HeaderSource: "s", bus.HeaderKey: fmt.Sprintf("k-%d", i%7),
			middleware.HeaderPoisonReason: string(reason), middleware.HeaderPoisonError: "boom", middleware.HeaderPoisonHandler: "h",
			middleware.HeaderPoisonTopic: be.topic, middleware.HeaderPoisonGroup: "billing", middleware.HeaderPoisonAttempts: "1",
			middleware.HeaderPoisonFirstFailure: now, middleware.HeaderPoisonLastFailure: now, middleware.HeaderPoisonHost: "test",
		} {
			m.Metadata.Set(k, v)
		}
		batch = append(batch, m)
		if len(batch) == 100 || i == n-1 {
			require.NoError(t, b.Publisher.Publish(be.topic+".poison", batch...))
			batch = nil
		}
	}
}

// A poison queue larger than a read page (Redis), than what the old --window held unacked, is
// handled whole: purge by reason takes exactly the selected half (on Kafka the other half is
// appended again so that the offset passes them), and a consumer holding the eventbus-dlq group
// on Kafka (an older dlq, a killed run) hides nothing from list.
func TestDLQLargeQueue(t *testing.T) {
	forEachDLQBackend(t, func(t *testing.T, be dlqBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		n := 1100 // two Redis pages and more
		if be.name == "rabbitmq" {
			n = 300 // basic.get is one round trip per message
		}
		poisonRecords(t, ctx, be, n)
		dlq := func(args ...string) (int, string, string) {
			return cli(t, ctx, "", append(append([]string{"dlq"}, args...), "--config", be.cfg, "--topic", be.topic)...)
		}
		if be.name == "kafka" {
			cfg, err := config.Load(be.cfg)
			require.NoError(t, err)
			holder, err := bus.Open(ctx, cfg, bus.WithLogger(quietLogger()), bus.WithConsumerGroup(dlqReaderGroup), bus.WithStartFrom(bus.StartOldest))
			require.NoError(t, err)
			msgs, err := holder.Subscriber.Subscribe(ctx, be.topic+".poison")
			require.NoError(t, err)
			select {
			case <-msgs: // held, never acked
			case <-ctx.Done():
				t.Fatal("the holder got nothing")
			}
			code, _, errOut := dlq("list")
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, errOut, fmt.Sprintf("%d of %d messages", n, n))
			require.NoError(t, holder.Close())
		}

		code, out, errOut := dlq("list", "--json")
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, n, strings.Count(out, "\n"))
		assert.Contains(t, errOut, fmt.Sprintf("%d of %d messages", n, n))

		code, _, errOut = dlq("purge", "--reason", "permanent")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, fmt.Sprintf("purged %d of %d messages", n/2, n))
		code, out, errOut = dlq("list", "--json")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, fmt.Sprintf("%d of %d messages", n/2, n/2))
		assert.Equal(t, n/2, strings.Count(out, `"reason":"exhausted"`))

		code, _, errOut = dlq("purge", "--all")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, fmt.Sprintf("purged %d of %d messages", n/2, n/2))
		code, _, errOut = dlq("list")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "0 of 0 messages")
	})
}

// On RabbitMQ a redrive goes straight to the failing group's queue: another group's queue of
// the topic does not receive it.
func TestDLQRedriveOnRabbitMQReachesOnlyTheFailingGroupsQueue(t *testing.T) {
	vhost := brokertest.RabbitMQVhost(t)
	be := dlqBackend{name: "rabbitmq", topic: "invoices-" + watermill.NewShortUUID(),
		cfg: writeFile(t, "eventbus.yaml", fmt.Sprintf("backend: rabbitmq\nrabbitmq:\n  vhost: %s\n  consumer_group: billing\n  publisher: {declare_groups: [billing]}\n", vhost)+dlqRouterYAML)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := amqp.Dial(brokertest.RabbitMQURL(vhost))
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	// shipping's queue of the topic, bound as the driver binds a group's queue.
	require.NoError(t, ch.ExchangeDeclare("eventbus", "topic", true, false, false, false, nil))
	shipping := "shipping." + be.topic
	_, err = ch.QueueDeclare(shipping, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	require.NoError(t, err)
	require.NoError(t, ch.QueueBind(shipping, be.topic, "eventbus", false, nil))

	b, calls := failingService(t, ctx, be)
	require.NoError(t, b.Publish(ctx, be.topic, bus.Event{ID: "ord-1", Type: "t.v1", Source: "s", Data: 1}))
	require.Eventually(t, func() bool {
		code, _, errOut := cli(t, ctx, "", "dlq", "list", "--config", be.cfg, "--topic", be.topic)
		return code == 0 && strings.Contains(errOut, "1 of 1 messages")
	}, time.Minute, 100*time.Millisecond)
	code, _, errOut := cli(t, ctx, "", "dlq", "redrive", "--config", be.cfg, "--topic", be.topic)
	require.Equal(t, 0, code, errOut)
	require.Eventually(t, func() bool { return calls("ord-1") == 2 }, 30*time.Second, 50*time.Millisecond, "billing got the redrive")
	q, err := ch.QueueDeclarePassive(shipping, true, false, false, false, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, q.Messages, "shipping holds the original event only")
}
