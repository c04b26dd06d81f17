package router_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

func TestRouterSectionDrivesEverySetting(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`router:
  close_timeout: 5s
  handler_timeout: 2s
  retry: {max_attempts: 7, initial_interval: 10ms, multiplier: 3, max_interval: 1s, jitter: 0.2, max_elapsed_time: 30s}
  poison: {enabled: true, topic: "dlq.{topic}", on_poisoned: park}
  ordering: {concurrency: 16, redelivery_delay: 1s}
  dedup: {enabled: true, window: 1h, store: redis, redis: {addrs: ["cache:6379"], db: 2, key_prefix: "svc:", timeout: 500ms}}
`))
	require.NoError(t, err)
	c, err := router.LoadConfig(cfg)
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, c.CloseTimeout)
	assert.Equal(t, 2*time.Second, c.HandlerTimeout)
	assert.Equal(t, middleware.RetryConfig{MaxAttempts: 7, InitialInterval: 10 * time.Millisecond, Multiplier: 3,
		MaxInterval: time.Second, Jitter: 0.2, MaxElapsedTime: 30 * time.Second}, c.Retry)
	assert.Equal(t, "dlq.orders", c.Poison.PoisonTopic("orders"))
	assert.Equal(t, middleware.Park, c.Poison.OnPoisoned)
	assert.Equal(t, middleware.OrderingConfig{Concurrency: 16, RedeliveryDelay: time.Second}, c.Ordering)
	assert.Equal(t, "redis", c.Dedup.Store)
	assert.Equal(t, []string{"cache:6379"}, c.Dedup.Redis.Addrs)
	assert.Equal(t, 2, c.Dedup.Redis.DB)
	assert.Equal(t, 500*time.Millisecond, c.Dedup.Redis.Timeout)
}

func TestRouterSectionErrorsNameLineAndKey(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`router:
  retry:
    max_attempts: 0
    jitter: 2
    max_atempts: 3
  poison:
    topic: ""
    on_poisoned: drop
  ordering:
    concurrency: 0
    on_poisoned: park
  dedup:
    store: memcached
    redis: {url: "redis://u:hunter2@cache:6379/0"}
`))
	require.NoError(t, err)
	_, err = router.LoadConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Equal(t, []string{
		`eventbus.yaml:5: router.retry.max_atempts: unknown key (did you mean "max_attempts"?)`,
		`eventbus.yaml:11: router.ordering.on_poisoned: renamed to router.poison.on_poisoned`,
		`eventbus.yaml:14: router.dedup.redis.url: renamed to addrs (with username, password, db and tls, as in the redis: section)`,
		`eventbus.yaml:3: router.retry.max_attempts: must be at least 1 (1 turns retries off)`,
		`eventbus.yaml:4: router.retry.jitter: must be between 0 and 1`,
		`eventbus.yaml:7: router.poison.topic: must name the poison topic, e.g. "{topic}.poison"`,
		`eventbus.yaml:8: router.poison.on_poisoned: "drop": want skip or park`,
		`eventbus.yaml:10: router.ordering.concurrency: must be at least 1`,
		`eventbus.yaml:13: router.dedup.store: "memcached": want memory or redis`,
	}, strings.Split(err.Error(), "\n"))
}

// TestConcurrencyNeedsPipelining: asking for parallel handlers on a subscriber that waits for
// each ack fails at start-up, naming the setting, the backend and the fix.
func TestConcurrencyNeedsPipelining(t *testing.T) {
	b, err := bus.OpenConfig(context.Background(), "kafka", brokertest.KafkaConfig(brokertest.StartKafka(t, 1), "g", 0, 1), bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	c := router.DefaultConfig()
	c.Ordering.Concurrency = 8
	_, err = router.New(b, c)
	require.ErrorIs(t, err, bus.ErrNotSupported)
	assert.Contains(t, err.Error(), "router.ordering.concurrency is 8")
	assert.Contains(t, err.Error(), "backend kafka: pipelining (set kafka.consumer.max_in_flight")

	b2, err := bus.OpenConfig(context.Background(), "kafka", brokertest.KafkaConfig(brokertest.StartKafka(t, 1), "g", 0, 1), bus.WithMaxInFlight(32), bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b2.Close()
	_, err = router.New(b2, c)
	assert.NoError(t, err)
}

// TestHandlerTimeoutDefault: a router built from a file that does not set handler_timeout
// bounds each handler attempt at the default, 30s (under Kafka's 60s rebalance_timeout), so a
// hung handler's context is cancelled before it costs the member its place in the group.
func TestHandlerTimeoutDefault(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	cfg, err := config.Parse("eventbus.yaml", []byte(brokertest.KafkaYAML(addr)+"router:\n  close_timeout: 5s\n"))
	require.NoError(t, err)
	b, err := bus.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	r, err := router.FromConfig(b, cfg)
	require.NoError(t, err)
	type seen struct {
		start, deadline time.Time
		ok              bool
	}
	got := make(chan seen, 1)
	topic := "hung-" + strings.ReplaceAll(t.Name(), "/", "-")
	r.AddConsumerHandler("hung", topic, b.Subscriber, func(m *message.Message) error {
		d, ok := m.Context().Deadline()
		select {
		case got <- seen{start: time.Now(), deadline: d, ok: ok}:
		default:
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	defer func() { _ = r.Close(); <-done }()
	<-r.Running()
	require.NoError(t, b.Publish(context.Background(), topic, bus.Event{ID: "e1", Type: "t", Source: "s"}))
	select {
	case s := <-got:
		require.True(t, s.ok, "the handler's context has no deadline: a hung handler would hold its partition forever")
		assert.InDelta(t, float64(30*time.Second), float64(s.deadline.Sub(s.start)), float64(time.Second))
	case <-time.After(30 * time.Second):
		t.Fatal("the handler was not called")
	}
}

// TestRunnerKeys: the keys Run reads, their defaults and their errors.
func TestRunnerKeys(t *testing.T) {
	d := router.DefaultConfig()
	assert.True(t, d.Enabled)
	assert.Zero(t, d.MaxConsecutiveErrors)
	assert.Equal(t, router.HTTPConfig{Addr: ":8080"}, d.HTTP)
	assert.Equal(t, router.LogConfig{Format: "json", Level: "info"}, d.Log)
	assert.Equal(t, "none", d.Tracing.Exporter)

	cfg, err := config.Parse("eventbus.yaml", []byte(`router:
  enabled: false
  max_consecutive_errors: 10
  http: {addr: "127.0.0.1:9090", stuck_after: 2m}
  log: {format: text, level: debug}
  tracing: {exporter: otlp, endpoint: "http://otel-collector:4318", service_name: notifier}
`))
	require.NoError(t, err)
	c, err := router.LoadConfig(cfg)
	require.NoError(t, err)
	assert.False(t, c.Enabled)
	assert.Equal(t, 10, c.MaxConsecutiveErrors)
	assert.Equal(t, router.HTTPConfig{Addr: "127.0.0.1:9090", StuckAfter: 2 * time.Minute}, c.HTTP)
	assert.Equal(t, router.LogConfig{Format: "text", Level: "debug"}, c.Log)
	assert.Equal(t, router.TracingConfig{Exporter: "otlp", Endpoint: "http://otel-collector:4318", ServiceName: "notifier"}, c.Tracing)

	cfg, err = config.Parse("eventbus.yaml", []byte(`router:
  max_consecutive_errors: -1
  http: {addr: "8080"}
  log: {format: xml, level: loud}
  tracing: {exporter: otlp, endpoint: "otel-collector:4318"}
`))
	require.NoError(t, err)
	_, err = router.LoadConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Equal(t, []string{
		`eventbus.yaml:2: router.max_consecutive_errors: must not be negative (0: no limit)`,
		`eventbus.yaml:3: router.http.addr: "8080": want host:port or :port, e.g. ":8080"`,
		`eventbus.yaml:4: router.log.format: "xml": want json or text`,
		`eventbus.yaml:4: router.log.level: "loud": want debug, info, warn or error`,
		`eventbus.yaml:5: router.tracing.endpoint: "otel-collector:4318": want the collector's OTLP/HTTP URL, e.g. http://otel-collector:4318`,
	}, strings.Split(err.Error(), "\n"))
}

// TestPoisonParkStoreKeys: router.poison.store picks where the park state lives, with the redis
// backend section's connection keys.
func TestPoisonParkStoreKeys(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`router:
  poison:
    on_poisoned: park
    store: redis
    redis: {addrs: ["cache:6379"], username: svc, key_prefix: "svc:park:"}
`))
	require.NoError(t, err)
	c, err := router.LoadConfig(cfg)
	require.NoError(t, err)
	assert.Equal(t, "redis", c.Poison.Store)
	assert.Equal(t, []string{"cache:6379"}, c.Poison.Redis.Addrs)
	assert.Equal(t, "svc:park:", c.Poison.Redis.KeyPrefix)
	assert.Equal(t, "eventbus:park:", router.DefaultConfig().Poison.Redis.KeyPrefix)

	cfg, err = config.Parse("eventbus.yaml", []byte("router:\n  poison:\n    on_poisoned: park\n    store: mongo\n"))
	require.NoError(t, err)
	_, err = router.LoadConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Equal(t, `eventbus.yaml:4: router.poison.store: "mongo": want memory or redis`, err.Error())
}
