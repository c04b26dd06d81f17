package tests

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// The error checks below run the same way on every backend: a caller reacts to a closed bus, a
// refused password and an unreachable broker with errors.Is on the portable classes, whatever
// the backend.

// errorBackend says how to reach one backend for the error checks.
type errorBackend struct {
	name string
	// working returns the config of a broker that is up, for the test alone.
	working func(t *testing.T) any
	// at returns the config of a broker at addr, with a short dial timeout.
	at func(addr string) any
	// wrongPassword returns the config of a broker that refuses its password, and the password.
	wrongPassword func(t *testing.T) (any, string)
	// outage returns the config of a private broker and a function that stops it for good;
	// nil when the backend's outage test sits beside its driver (RabbitMQ's TestFaults, whose
	// private node takes seconds to start).
	outage func(t *testing.T) (any, func())
}

const wrongPassword = "not-the-password-7q"

func errorBackends() []errorBackend {
	return []errorBackend{
		{
			name: kafka.Name,
			working: func(t *testing.T) any {
				return brokertest.KafkaConfig(brokertest.StartKafka(t, 1), "errors-"+watermill.NewShortUUID(), 0, 1)
			},
			at: func(addr string) any { return kafkaAt(addr) },
			wrongPassword: func(t *testing.T) (any, string) {
				cfg := kafkaAt(brokertest.StartKafkaSASL(t, "lms", "s3cret"))
				cfg.SASL = kafka.SASLConfig{Mechanism: "PLAIN", Username: "lms", Password: config.Secret(wrongPassword)}
				return cfg, wrongPassword
			},
			outage: func(t *testing.T) (any, func()) {
				b, err := embedded.Start(embedded.Options{Partitions: 1})
				require.NoError(t, err)
				t.Cleanup(func() { _ = b.Close() })
				return kafkaAt(b.Addrs()[0]), func() { _ = b.Close() }
			},
		},
		{
			name: redis.Name,
			working: func(t *testing.T) any {
				brokertest.Redis(t)
				return redisAt(brokertest.RedisAddr)
			},
			at: func(addr string) any { return redisAt(addr) },
			wrongPassword: func(t *testing.T) (any, string) {
				addr, _ := brokertest.StartRedis(t, "--requirepass", "s3cret")
				cfg := redisAt(addr)
				cfg.Password = config.Secret(wrongPassword)
				return cfg, wrongPassword
			},
			outage: func(t *testing.T) (any, func()) {
				addr, kill := brokertest.StartRedis(t)
				return redisAt(addr), kill
			},
		},
		{
			name: rabbitmq.Name,
			working: func(t *testing.T) any {
				cfg := rabbitmqAt(brokertest.RabbitMQAddr)
				cfg.VHost = brokertest.RabbitMQVhost(t)
				return cfg
			},
			at: func(addr string) any { return rabbitmqAt(addr) },
			wrongPassword: func(t *testing.T) (any, string) {
				if testing.Short() {
					t.Skip("needs RabbitMQ on " + brokertest.RabbitMQAddr + "; skipped under -short")
				}
				// The password is refused before any vhost is opened: no vhost of the test's own.
				cfg := rabbitmqAt(brokertest.RabbitMQAddr)
				cfg.Password = config.Secret(wrongPassword)
				return cfg, wrongPassword
			},
		},
	}
}

func kafkaAt(addr string) *kafka.Config {
	cfg := brokertest.KafkaConfig(addr, "errors-"+watermill.NewShortUUID(), 0, 1)
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, 2*time.Second, 2*time.Second
	cfg.Publisher.Retries, cfg.Publisher.RetryBackoff = 1, 50*time.Millisecond
	return cfg
}

func redisAt(addr string) *redis.Config {
	cfg := redis.DefaultConfig()
	cfg.Addrs = []string{addr}
	cfg.ConsumerGroup = "errors-" + watermill.NewShortUUID()
	cfg.DialTimeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, time.Second, time.Second
	cfg.Consumer.BlockTime = 100 * time.Millisecond
	return cfg
}

func rabbitmqAt(addr string) *rabbitmq.Config {
	host, port, _ := net.SplitHostPort(addr)
	cfg := rabbitmq.DefaultConfig()
	cfg.Host = host
	cfg.Port, _ = strconv.Atoi(port)
	cfg.DialTimeout = 2 * time.Second
	return cfg
}

func openFor(t *testing.T, backend string, cfg any) (*bus.Bus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return bus.OpenConfig(ctx, backend, cfg, bus.WithLogger(brokertest.Logger()))
}

func event(id string) bus.Event { return bus.Event{ID: id, Type: "errors.test", Source: "tests"} }

// TestErrClosed: a closed publisher, subscriber or bus says so with ErrClosed on every backend.
func TestErrClosed(t *testing.T) {
	for _, be := range errorBackends() {
		t.Run(be.name, func(t *testing.T) {
			b, err := openFor(t, be.name, be.working(t))
			require.NoError(t, err)
			defer b.Close()
			topic := "errors-closed-" + watermill.NewShortUUID()

			require.NoError(t, b.Publisher.Close())
			err = b.Publisher.Publish(topic, message.NewMessage("m1", nil))
			require.ErrorIs(t, err, bus.ErrClosed, "Publish after the publisher's Close")
			assert.NotErrorIs(t, err, bus.ErrUnavailable)

			require.NoError(t, b.Subscriber.Close())
			_, err = b.Subscriber.Subscribe(context.Background(), topic)
			require.ErrorIs(t, err, bus.ErrClosed, "Subscribe after the subscriber's Close")
			t.Log(err)

			require.NoError(t, b.Close())
			assert.ErrorIs(t, b.Publish(context.Background(), topic, event("e1")), bus.ErrClosed, "Bus.Publish after Close")
		})
	}
}

// TestErrUnauthorized: a password the broker refuses fails Open with ErrUnauthorized (not
// ErrUnavailable: retrying does not help), and the error does not show the password.
func TestErrUnauthorized(t *testing.T) {
	for _, be := range errorBackends() {
		t.Run(be.name, func(t *testing.T) {
			cfg, password := be.wrongPassword(t)
			b, err := openFor(t, be.name, cfg)
			if b != nil {
				_ = b.Close()
			}
			require.ErrorIs(t, err, bus.ErrUnauthorized)
			t.Log(err)
			assert.NotErrorIs(t, err, bus.ErrUnavailable)
			assert.NotContains(t, err.Error(), password)
		})
	}
}

// TestErrUnavailable: Open against a port where nothing listens fails with ErrUnavailable,
// naming the address, within the dial timeout and retries of the config.
func TestErrUnavailable(t *testing.T) {
	for _, be := range errorBackends() {
		t.Run(be.name, func(t *testing.T) {
			if testing.Short() {
				t.Skip("dials a closed port; skipped under -short")
			}
			addr := brokertest.ClosedPort(t)
			b, err := openFor(t, be.name, be.at(addr))
			if b != nil {
				_ = b.Close()
			}
			require.ErrorIs(t, err, bus.ErrUnavailable)
			t.Log(err)
			assert.NotErrorIs(t, err, bus.ErrUnauthorized)
			_, port, _ := net.SplitHostPort(addr)
			assert.Contains(t, err.Error(), port, "the error names the address")
			assert.Contains(t, err.Error(), " up", "the error asks whether the broker is up")
		})
	}
}

// TestPublishDuringOutage: a Publish while the broker is gone fails with ErrUnavailable once
// the client gives up.
func TestPublishDuringOutage(t *testing.T) {
	for _, be := range errorBackends() {
		t.Run(be.name, func(t *testing.T) {
			if be.outage == nil {
				t.Skip("tested beside the driver (backends/" + be.name + " TestFaults): its private broker takes seconds to start")
			}
			cfg, stop := be.outage(t)
			b, err := openFor(t, be.name, cfg)
			require.NoError(t, err)
			defer b.Close()
			topic := "errors-outage-" + watermill.NewShortUUID()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, b.Publish(ctx, topic, event("before")))

			stop()
			err = b.Publish(ctx, topic, event("during"))
			require.ErrorIs(t, err, bus.ErrUnavailable)
			t.Log(err)
			assert.NoError(t, ctx.Err(), "Publish gave up on its own, before the test's deadline")
		})
	}
}

// TestErrInvalidPosition: a start position not in the backend's format fails Open with
// ErrInvalidPosition, and a rewind to one fails so too where the backend can rewind.
func TestErrInvalidPosition(t *testing.T) {
	for _, be := range errorBackends() {
		t.Run(be.name, func(t *testing.T) {
			cfg := be.working(t)
			if rc, ok := cfg.(*rabbitmq.Config); ok {
				rc.Queue.Type = rabbitmq.QueueStream // only a stream starts at a position
			}
			b, err := bus.OpenConfig(context.Background(), be.name, cfg, bus.WithLogger(brokertest.Logger()),
				bus.WithConsumerGroup("g"), bus.WithStartPosition("sideways"))
			if err == nil {
				_ = b.Close()
			}
			require.ErrorIs(t, err, bus.ErrInvalidPosition)
			assert.ErrorContains(t, err, `"sideways"`)

			b, err = openFor(t, be.name, cfg)
			require.NoError(t, err)
			defer b.Close()
			topic := "errors-position-" + watermill.NewShortUUID()
			require.NoError(t, b.Publish(context.Background(), topic, event("e1")))
			defer func() { assert.NoError(t, b.DeleteTopics(context.Background(), []string{topic}, "g")) }()
			_, err = b.Rewind(context.Background(), topic, "g", bus.RewindTarget{Position: "sideways"}, true)
			if errors.Is(err, bus.ErrNotSupported) {
				return // RabbitMQ keeps no position to move
			}
			require.ErrorIs(t, err, bus.ErrInvalidPosition)
			assert.ErrorContains(t, err, `"sideways"`, "the error names the position")
		})
	}
}
