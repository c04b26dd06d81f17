package router_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/router"
)

// inProcess is a runner running in the test process.
type inProcess struct {
	base           string // http://host:port
	readyzAtListen int    // /readyz status when the server started, before the bus opened
	done           chan error
	cancel         context.CancelFunc
}

func runInProcess(t *testing.T, yaml string, handlers ...router.Handler) *inProcess {
	t.Helper()
	cfg, err := config.Parse("eventbus.yaml", []byte(yaml))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{done: make(chan error, 1), cancel: cancel}
	listening := make(chan struct{})
	r := &router.Runner{Config: cfg, Handlers: handlers, LogOutput: testWriter{t}, Listening: func(addr net.Addr) {
		p.base = "http://" + addr.String()
		p.readyzAtListen = status(p.base + router.PathReadyz)
		close(listening)
	}}
	prevLogger := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prevLogger) }) // Run makes its logger the default
	go func() { p.done <- r.Run(ctx) }()
	select {
	case <-listening:
	case err := <-p.done:
		t.Fatalf("runner ended before listening: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("runner did not stop within 30s of its context's end")
		}
	})
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}

func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + router.PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return mfs
}

// sum adds the values of family name whose labels include want.
func sum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	var total float64
	found := false
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		}
	}
	return total, found
}

// TestMetricsAndLagDrain: a backlog published before the service starts shows as lag; as a
// gated handler lets it through, lag falls to 0 and the handled counter reaches the backlog.
func TestMetricsAndLagDrain(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml func(t *testing.T) (yaml, topic string)
	}{
		{"kafka", func(t *testing.T) (string, string) {
			addr := brokertest.StartKafka(t, 2)
			return "backend: kafka\n" + brokertest.KafkaYAML(addr) + "  consumer_group: g\n", "enrollments"
		}},
		{"redis", func(t *testing.T) (string, string) {
			return "backend: redis\nredis: {addrs: [\"127.0.0.1:6379\"], consumer_group: g, consumer: {start_from: oldest}}\n", brokertest.RedisStream(t, "runner:lag")
		}},
		{"rabbitmq", func(t *testing.T) (string, string) {
			vhost := brokertest.RabbitMQVhost(t)
			return fmt.Sprintf("backend: rabbitmq\nrabbitmq: {url: %q, consumer_group: g, consumer: {prefetch: 1}}\n", brokertest.RabbitMQURL(vhost)), "enrollments"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, topic := tc.yaml(t)
			yaml := base + "router:\n  http: {addr: \"127.0.0.1:0\"}\n  close_timeout: 5s\n"
			b := openBus(t, yaml)
			const n = 20
			gate := make(chan struct{})
			var handled atomic.Int64
			if tc.name == "rabbitmq" {
				// A group's queue exists once the group subscribed: start first, then publish.
				p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(msg *message.Message) error {
					select {
					case <-gate:
					case <-msg.Context().Done():
						return msg.Context().Err()
					}
					handled.Add(1)
					return nil
				}})
				require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusOK }, 20*time.Second, 20*time.Millisecond)
				publishN(t, b, topic, n)
				checkLagDrains(t, p, topic, n, gate, &handled)
				return
			}
			publishN(t, b, topic, n)
			p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(msg *message.Message) error {
				select {
				case <-gate:
				case <-msg.Context().Done():
					return msg.Context().Err()
				}
				handled.Add(1)
				return nil
			}})
			checkLagDrains(t, p, topic, n, gate, &handled)
		})
	}
}

func checkLagDrains(t *testing.T, p *inProcess, topic string, n int, gate chan struct{}, handled *atomic.Int64) {
	t.Helper()
	labels := map[string]string{"topic": topic, "group": "g"}
	// The backlog shows as lag plus pending (Redis reads a batch ahead: read entries are
	// pending, no longer lag; on RabbitMQ the one message out to the handler is unacked, not
	// ready), and one message is in flight, held by the gate.
	require.Eventually(t, func() bool {
		mfs := scrape(t, p.base)
		lag, ok := sum(mfs, router.MetricLag, labels)
		pending, _ := sum(mfs, router.MetricPending, labels)
		inflight, _ := sum(mfs, router.MetricInFlight, map[string]string{"topic": topic, "handler": "h"})
		return ok && lag+pending >= float64(n-1) && inflight == 1
	}, 20*time.Second, 50*time.Millisecond)
	close(gate)
	require.Eventually(t, func() bool {
		mfs := scrape(t, p.base)
		lag, ok := sum(mfs, router.MetricLag, labels)
		pending, _ := sum(mfs, router.MetricPending, labels)
		done, _ := sum(mfs, router.MetricHandled, map[string]string{"topic": topic, "handler": "h"})
		return ok && lag == 0 && pending == 0 && done == float64(n)
	}, 30*time.Second, 50*time.Millisecond)
	assert.EqualValues(t, n, handled.Load())
	mfs := scrape(t, p.base)
	assert.Contains(t, mfs, router.MetricHandlerDuration)
	assert.Equal(t, dto.MetricType_HISTOGRAM, mfs[router.MetricHandlerDuration].GetType())
	inflight, _ := sum(mfs, router.MetricInFlight, map[string]string{"topic": topic})
	assert.Zero(t, inflight)
}

// TestFailedRetriedPoisonedCounted: a handler failing every attempt counts its retries, its
// final failure and its poisoning.
func TestFailedRetriedPoisonedCounted(t *testing.T) {
	topic := brokertest.RedisStream(t, "runner:poison")
	yaml := "backend: redis\nredis: {addrs: [\"127.0.0.1:6379\"], consumer_group: g, consumer: {start_from: oldest}}\n" +
		"router:\n  http: {addr: \"127.0.0.1:0\"}\n  retry: {max_attempts: 3, initial_interval: 1ms}\n  poison: {enabled: true}\n"
	publishN(t, openBus(t, yaml), topic, 2)
	p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(msg *message.Message) error {
		return fmt.Errorf("no")
	}})
	want := map[string]string{"topic": topic, "handler": "h", "backend": "redis"}
	require.Eventually(t, func() bool {
		n, _ := sum(scrape(t, p.base), router.MetricPoisoned, want)
		return n == 2
	}, 20*time.Second, 50*time.Millisecond)
	mfs := scrape(t, p.base)
	failed, _ := sum(mfs, router.MetricFailed, want)
	retried, _ := sum(mfs, router.MetricRetried, want)
	published, _ := sum(mfs, router.MetricPublished, map[string]string{"topic": topic + ".poison"})
	assert.Equal(t, 2.0, failed)
	assert.Equal(t, 4.0, retried)
	assert.Equal(t, 2.0, published)
}

// TestTraceIDReachesHandler: the trace id of the span around Publish is the trace id of the
// handler's context, through message metadata, on every backend.
func TestTraceIDReachesHandler(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml func(t *testing.T) (yaml, topic string)
	}{
		{"kafka", func(t *testing.T) (string, string) {
			return "backend: kafka\n" + brokertest.KafkaYAML(brokertest.StartKafka(t, 1)) + "  consumer_group: g\n", "traced"
		}},
		{"redis", func(t *testing.T) (string, string) {
			return "backend: redis\nredis: {addrs: [\"127.0.0.1:6379\"], consumer_group: g, consumer: {start_from: oldest}}\n", brokertest.RedisStream(t, "runner:trace")
		}},
		{"rabbitmq", func(t *testing.T) (string, string) {
			return fmt.Sprintf("backend: rabbitmq\nrabbitmq: {url: %q, consumer_group: g}\n", brokertest.RabbitMQURL(brokertest.RabbitMQVhost(t))), "traced"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, topic := tc.yaml(t)
			yaml := base + "router:\n  http: {addr: \"127.0.0.1:0\"}\n"
			seen := make(chan trace.SpanContext, 1)
			p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(msg *message.Message) error {
				select {
				case seen <- trace.SpanContextFromContext(msg.Context()):
				default:
				}
				return nil
			}})
			require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusOK }, 20*time.Second, 20*time.Millisecond)

			// The publishing side: its own tracer provider and telemetry, as a publishing
			// service would have.
			tp := sdktrace.NewTracerProvider()
			defer tp.Shutdown(context.Background())
			b := openBus(t, yaml)
			b.Publisher = router.NewTelemetry(b.Backend(), "", tp).InstrumentPublisher(b.Publisher)
			ctx, span := tp.Tracer("test").Start(context.Background(), "request")
			require.NoError(t, publishCtx(ctx, b, topic))
			span.End()

			want := span.SpanContext().TraceID()
			for {
				select {
				case sc := <-seen:
					require.True(t, sc.IsValid())
					if sc.TraceID() == want {
						assert.NotEqual(t, span.SpanContext().SpanID(), sc.SpanID(), "the handler has its own span")
						return
					}
				case <-time.After(20 * time.Second):
					t.Fatal("the handler never saw the publisher's trace id")
				}
			}
		})
	}
}

// TestReadyzFollowsBroker: /readyz is false before the bus is open, true once subscribed,
// false while the (private) Redis is down, true again when it is back; /healthz stays ok.
func TestReadyzFollowsBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private redis-server")
	}
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is not installed")
	port := brokertest.FreePort(t)
	dir := t.TempDir()
	var mu sync.Mutex
	var cmd *exec.Cmd
	start := func() {
		c := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
		require.NoError(t, c.Start())
		mu.Lock()
		cmd = c
		mu.Unlock()
		require.Eventually(t, func() bool {
			conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return false
			}
			conn.Close()
			return true
		}, 10*time.Second, 20*time.Millisecond)
	}
	kill := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	start()
	t.Cleanup(kill)

	yaml := fmt.Sprintf("backend: redis\nredis: {addrs: [\"127.0.0.1:%d\"], consumer_group: g, dial_timeout: 500ms, read_timeout: 500ms, write_timeout: 500ms}\nrouter:\n  http: {addr: \"127.0.0.1:0\"}\n  close_timeout: 2s\n", port)
	p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: "ready", Handle: func(*message.Message) error { return nil }})
	assert.Equal(t, http.StatusServiceUnavailable, p.readyzAtListen, "not ready before subscribing")
	require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusOK }, 20*time.Second, 20*time.Millisecond)

	kill()
	require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusServiceUnavailable }, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, http.StatusOK, status(p.base+router.PathHealthz), "a broker outage is not a reason to restart the process")

	start()
	require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
}

// TestKillSwitch: router.enabled false keeps the process up and healthy, never ready, and
// consumes nothing.
func TestKillSwitch(t *testing.T) {
	topic := brokertest.RedisStream(t, "runner:off")
	yaml := "backend: redis\nredis: {addrs: [\"127.0.0.1:6379\"], consumer_group: g, consumer: {start_from: oldest}}\nrouter:\n  enabled: false\n  http: {addr: \"127.0.0.1:0\"}\n"
	publishN(t, openBus(t, yaml), topic, 1)
	var calls atomic.Int64
	p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(*message.Message) error { calls.Add(1); return nil }})
	assert.Equal(t, http.StatusOK, status(p.base+router.PathHealthz))
	assert.Equal(t, http.StatusServiceUnavailable, status(p.base+router.PathReadyz))
	// Nothing consumed: the group was never created on the stream.
	groups, err := brokertest.Redis(t).XInfoGroups(context.Background(), topic).Result()
	require.NoError(t, err)
	assert.Empty(t, groups)
	assert.Zero(t, calls.Load())
	p.cancel()
	select {
	case err := <-p.done:
		assert.NoError(t, err)
		p.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("a disabled runner did not stop on its context's end")
	}
}

// TestOTLPExporter: with router.tracing.exporter otlp, the handling span reaches the
// collector's OTLP/HTTP endpoint (a local stand-in) by the time Run returns.
func TestOTLPExporter(t *testing.T) {
	var posts atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer collector.Close()

	topic := brokertest.RedisStream(t, "runner:otlp")
	yaml := "backend: redis\nredis: {addrs: [\"127.0.0.1:6379\"], consumer_group: g, consumer: {start_from: oldest}}\n" +
		fmt.Sprintf("router:\n  http: {addr: \"127.0.0.1:0\"}\n  tracing: {exporter: otlp, endpoint: %q, service_name: otlp-test}\n", collector.URL)
	publishN(t, openBus(t, yaml), topic, 1)
	handled := make(chan struct{}, 1)
	p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(*message.Message) error {
		handled <- struct{}{}
		return nil
	}})
	select {
	case <-handled:
	case <-time.After(20 * time.Second):
		t.Fatal("not handled")
	}
	p.cancel()
	select {
	case err := <-p.done:
		require.NoError(t, err)
		p.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("runner did not stop")
	}
	assert.Positive(t, posts.Load(), "spans exported to the collector on shutdown")
}

// TestReadyzFollowsKafkaBroker: /readyz turns false when the (private, embedded) Kafka broker
// the service consumes from is closed.
func TestReadyzFollowsKafkaBroker(t *testing.T) {
	kb, err := embedded.Start(embedded.Options{Partitions: 1})
	require.NoError(t, err)
	var closeOnce sync.Once
	closeBroker := func() { closeOnce.Do(func() { _ = kb.Close() }) }
	t.Cleanup(closeBroker)
	yaml := "backend: kafka\n" + brokertest.KafkaYAML(kb.Addrs()[0]) + "  consumer_group: g\n  dial_timeout: 500ms\n" +
		"router:\n  http: {addr: \"127.0.0.1:0\"}\n  close_timeout: 2s\n"
	p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: "ready", Handle: func(*message.Message) error { return nil }})
	assert.Equal(t, http.StatusServiceUnavailable, p.readyzAtListen, "not ready before subscribing")
	require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusOK }, 30*time.Second, 50*time.Millisecond)
	closeBroker()
	require.Eventually(t, func() bool { return status(p.base+router.PathReadyz) == http.StatusServiceUnavailable }, 30*time.Second, 100*time.Millisecond)
	assert.Equal(t, http.StatusOK, status(p.base+router.PathHealthz))
}

// TestHealthzFailsWhenHandlerStuck: a handler that ignores its context and never returns
// fails /healthz after router.http.stuck_after; /healthz recovers once it returns.
func TestHealthzFailsWhenHandlerStuck(t *testing.T) {
	topic := brokertest.RedisStream(t, "runner:stuck")
	yaml := "backend: redis\nredis: {addrs: [\"127.0.0.1:6379\"], consumer_group: g, consumer: {start_from: oldest}}\n" +
		"router:\n  http: {addr: \"127.0.0.1:0\", stuck_after: 300ms}\n  close_timeout: 1s\n"
	publishN(t, openBus(t, yaml), topic, 1)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	p := runInProcess(t, yaml, router.Handler{Name: "h", Topic: topic, Handle: func(*message.Message) error {
		started <- struct{}{}
		<-release
		return nil
	}})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("not handled")
	}
	assert.Equal(t, http.StatusOK, status(p.base+router.PathHealthz), "stuck only after stuck_after")
	require.Eventually(t, func() bool { return status(p.base+router.PathHealthz) == http.StatusServiceUnavailable }, 10*time.Second, 20*time.Millisecond)
	close(release)
	require.Eventually(t, func() bool { return status(p.base+router.PathHealthz) == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
}
