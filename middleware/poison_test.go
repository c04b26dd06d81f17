package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// subscribers runs a test on both Kafka subscribers: Watermill's (window 0) and the pipelined one.
var subscribers = []struct {
	name   string
	window int
}{{"watermill", 0}, {"pipelined", 32}}

func TestPermanentErrorGoesStraightToPoisonWithProvenance(t *testing.T) {
	for _, sub := range subscribers {
		t.Run(sub.name, func(t *testing.T) {
			addr := startBroker(t, 1)
			topic, group := "orders-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
			b := openBus(t, kafkaConfig(addr, group, sub.window, 1))
			before := time.Now()
			require.NoError(t, b.Publish(context.Background(), topic, bus.Event{
				ID: "evt-perm", Type: "order.created.v1", Source: "shop", Key: "order-7",
				Data: map[string]int{"n": 7}, Metadata: map[string]string{"traceparent": "00-abc-01"},
			}))

			r, err := router.New(b, fastConfig())
			require.NoError(t, err)
			seen := newCalls()
			r.AddConsumerHandler("charge", topic, b.Subscriber, func(m *message.Message) error {
				seen.add(m)
				return middleware.Permanent(errors.New("card declined for order 7"))
			})
			runRouter(t, r)

			poisoned := readTopic(t, addr, topic+".poison", 1)[0]
			assert.Equal(t, 1, seen.len(), "a permanent error must not be retried")
			md := poisoned.Metadata
			assert.Equal(t, "evt-perm", poisoned.UUID)
			assert.JSONEq(t, `{"n":7}`, string(poisoned.Payload), "payload intact")
			assert.Equal(t, "order-7", md.Get(bus.HeaderKey), "key intact")
			assert.Equal(t, "evt-perm", md.Get(bus.HeaderID))
			assert.Equal(t, "order.created.v1", md.Get(bus.HeaderType))
			assert.Equal(t, "00-abc-01", md.Get("traceparent"), "headers intact")
			assert.Equal(t, "evt-perm", md.Get(middleware.HeaderCorrelationID))

			prov, err := middleware.ParseProvenance(poisoned)
			require.NoError(t, err)
			assert.Equal(t, middleware.ReasonPermanent, prov.Reason)
			assert.Equal(t, "card declined for order 7", prov.Error)
			assert.Equal(t, "charge", prov.Handler)
			assert.Equal(t, topic, prov.Topic)
			assert.Equal(t, group, prov.Group)
			assert.Equal(t, bus.Position{Backend: "kafka", Topic: topic, ConsumerGroup: group, Coordinates: "0:0"}, prov.Position)
			assert.Equal(t, fmt.Sprintf("kafka %s 0:0 (group %s)", topic, group), md.Get(middleware.HeaderPoisonPosition))
			assert.Equal(t, 1, prov.Attempts)
			assert.False(t, prov.FirstFailure.Before(before.Truncate(time.Millisecond)), "first failure %v before the test", prov.FirstFailure)
			assert.Equal(t, prov.FirstFailure, prov.LastFailure)
			host, _ := os.Hostname()
			assert.Equal(t, host, prov.Host)
			assert.Empty(t, md.Get(middleware.HeaderAttempt), "the attempt counter is not part of the record")

			// Acked only after the poison publish: the group's offset moves past the message.
			require.Eventually(t, brokertest.KafkaCommittedIs(addr, group, topic, 1), 15*time.Second, 50*time.Millisecond)
		})
	}
}

func TestUndecodablePayloadGoesStraightToPoison(t *testing.T) {
	addr := startBroker(t, 1)
	topic, group := "enroll-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, 0, 1))
	// Not JSON, though it says it is.
	require.NoError(t, b.Publish(context.Background(), topic, bus.Event{ID: "evt-garbage", Type: "t.v1", Source: "s",
		Key: "k", ContentType: "application/json", Data: []byte("{not json")}))
	// A message its backend flagged as unreadable (a Redis entry without an id, say).
	flagged := message.NewMessage("evt-flagged", []byte("raw"))
	flagged.Metadata.Set(bus.HeaderInvalidReason, "stream entry 1732363200000-0 has no id field")
	require.NoError(t, b.Publisher.Publish(topic, flagged))

	r, err := router.New(b, fastConfig())
	require.NoError(t, err)
	seen := newCalls()
	r.AddConsumerHandler("enrollments", topic, b.Subscriber, func(m *message.Message) error {
		seen.add(m)
		ev, err := bus.ParseEvent(m)
		if err != nil {
			return err
		}
		var v map[string]any
		return ev.DecodeData(nil, &v)
	})
	runRouter(t, r)

	got := readTopic(t, addr, topic+".poison", 2)
	byID := map[string]middleware.Provenance{}
	for _, m := range got {
		p, err := middleware.ParseProvenance(m)
		require.NoError(t, err)
		byID[m.UUID] = p
	}
	garbage := byID["evt-garbage"]
	assert.Equal(t, middleware.ReasonInvalid, garbage.Reason)
	assert.Contains(t, garbage.Error, "event evt-garbage: decode application/json data: invalid event")
	assert.Equal(t, 1, garbage.Attempts, "an undecodable payload is not retried")
	assert.Equal(t, "0:0", garbage.Position.Coordinates)

	fl := byID["evt-flagged"]
	assert.Equal(t, middleware.ReasonInvalid, fl.Reason)
	assert.Equal(t, "stream entry 1732363200000-0 has no id field", fl.Error)
	assert.Equal(t, 0, fl.Attempts, "a flagged message never reaches the handler")
	assert.Equal(t, "0:1", fl.Position.Coordinates)
	assert.Equal(t, "enrollments", fl.Handler)
	assert.Equal(t, 1, seen.len(), "only the garbage payload reached the handler, once")
	require.Eventually(t, brokertest.KafkaCommittedIs(addr, group, topic, 2), 15*time.Second, 50*time.Millisecond)
}

func TestRetriesExhaustedAndPanicsArePoisoned(t *testing.T) {
	addr := startBroker(t, 1)
	topic, group := "exhaust-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, 32, 1))
	require.NoError(t, b.Publish(context.Background(), topic,
		bus.Event{ID: "evt-fail", Type: "t", Source: "s", Key: "a"},
		bus.Event{ID: "evt-panic", Type: "t", Source: "s", Key: "b"}))
	cfg := fastConfig()
	cfg.Retry.MaxAttempts = 3
	r, err := router.New(b, cfg)
	require.NoError(t, err)
	seen := newCalls()
	r.AddConsumerHandler("h", topic, b.Subscriber, func(m *message.Message) error {
		seen.add(m)
		if m.UUID == "evt-panic" {
			panic("nil map somewhere")
		}
		return fmt.Errorf("database unavailable (attempt %d)", middleware.Attempt(m))
	})
	runRouter(t, r)

	got := readTopic(t, addr, topic+".poison", 2)
	for _, m := range got {
		p, err := middleware.ParseProvenance(m)
		require.NoError(t, err)
		assert.Equal(t, middleware.ReasonExhausted, p.Reason, m.UUID)
		assert.Equal(t, 3, p.Attempts, m.UUID)
		assert.True(t, p.LastFailure.After(p.FirstFailure), "%s: first %v, last %v", m.UUID, p.FirstFailure, p.LastFailure)
		switch m.UUID {
		case "evt-fail":
			assert.Equal(t, "database unavailable (attempt 3)", p.Error)
		case "evt-panic":
			assert.Contains(t, p.Error, "handler panicked: nil map somewhere")
			assert.Contains(t, p.Error, "poison_test.go", "the stack is kept")
		}
	}
	assert.Equal(t, 6, seen.len())
}

// TestPoisonPublishFailureNacks: when the poison topic cannot be written, the failed message is
// not acked; it is redelivered, and stored once the poison queue works again.
func TestPoisonPublishFailureNacks(t *testing.T) {
	for _, sub := range subscribers {
		t.Run(sub.name, func(t *testing.T) {
			addr := startBroker(t, 1)
			topic, group := "nack-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
			b := openBus(t, kafkaConfig(addr, group, sub.window, 1))
			require.NoError(t, b.Publish(context.Background(), topic, bus.Event{ID: "evt-1", Type: "t", Source: "s", Key: "k"}))

			broken := openBus(t, kafkaConfig(addr, group, 0, 1))
			require.NoError(t, broken.Close()) // its publisher now fails every publish

			r, err := router.New(b, fastConfig(), router.WithPoisonPublisher(broken.Publisher))
			require.NoError(t, err)
			seen := newCalls()
			r.AddConsumerHandler("h", topic, b.Subscriber, func(m *message.Message) error {
				seen.add(m)
				return middleware.Permanent(errors.New("rejected"))
			})
			runRouter(t, r)
			seen.wait(t, 3) // delivered, nacked, delivered again, ...
			for _, m := range seen.snapshot()[:3] {
				assert.Equal(t, "evt-1", m.UUID)
			}
			require.NoError(t, r.Close())
			require.NoError(t, b.Close()) // the consumer commits what it marked when it closes
			assert.Equal(t, int64(-1), brokertest.KafkaCommittedOffset(t, addr, group, topic), "nothing may be committed while the message is not stored")

			// With a working poison queue, the same group's next consumer gets the message again
			// and stores it.
			b2 := openBus(t, kafkaConfig(addr, group, sub.window, 1))
			r2, err := router.New(b2, fastConfig())
			require.NoError(t, err)
			r2.AddConsumerHandler("h", topic, b2.Subscriber, func(m *message.Message) error {
				return middleware.Permanent(errors.New("rejected"))
			})
			runRouter(t, r2)
			p := readTopic(t, addr, topic+".poison", 1)[0]
			assert.Equal(t, "evt-1", p.UUID)
			require.Eventually(t, brokertest.KafkaCommittedIs(addr, group, topic, 1), 15*time.Second, 50*time.Millisecond)
		})
	}
}

func TestRetryHandlesAfterNFailuresWithBackoff(t *testing.T) {
	addr := startBroker(t, 1)
	topic, group := "retry-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, 0, 1))
	require.NoError(t, b.Publish(context.Background(), topic, bus.Event{ID: "evt-r", Type: "t", Source: "s"}))

	const failures = 3
	cfg := fastConfig()
	cfg.Retry.InitialInterval = 40 * time.Millisecond
	cfg.Retry.Multiplier = 2
	cfg.Retry.MaxInterval = time.Second
	r, err := router.New(b, cfg)
	require.NoError(t, err)
	seen := newCalls()
	handled := make(chan struct{}, 10)
	r.AddConsumerHandler("h", topic, b.Subscriber, func(m *message.Message) error {
		seen.add(m)
		if middleware.Attempt(m) <= failures {
			return errors.New("not yet")
		}
		handled <- struct{}{}
		return nil
	})
	runRouter(t, r)
	select {
	case <-handled:
	case <-time.After(30 * time.Second):
		t.Fatal("not handled")
	}
	require.Eventually(t, brokertest.KafkaCommittedIs(addr, group, topic, 1), 15*time.Second, 50*time.Millisecond)
	assert.Equal(t, failures+1, seen.len(), "handled once after %d retries", failures)
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for i, m := range seen.msgs {
		assert.Equal(t, strconv.Itoa(i+1), m.Metadata.Get(middleware.HeaderAttempt))
	}
	// Backoff: 40ms, 80ms, 160ms at least between attempts (no jitter).
	for i := 1; i < len(seen.at); i++ {
		want := cfg.Retry.InitialInterval << (i - 1)
		assert.GreaterOrEqual(t, seen.at[i].Sub(seen.at[i-1]), want, "wait before attempt %d", i+1)
	}
	assert.Equal(t, map[int32]int64{0: 1}, partitionEnds(t, addr, topic), "retries run in place: nothing is published back to the topic")
}
