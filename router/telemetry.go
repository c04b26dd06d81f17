package router

import (
	"context"
	"errors"

	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
)

// Metric names, following Prometheus' conventions: eventbus_ prefix, _total counters, base
// units (_seconds). Handler metrics have the labels topic, handler and backend.
const (
	MetricHandled         = "eventbus_messages_handled_total"
	MetricFailed          = "eventbus_messages_failed_total"
	MetricRetried         = "eventbus_messages_retried_total"
	MetricPoisoned        = "eventbus_messages_poisoned_total"
	MetricHandlerDuration = "eventbus_handler_duration_seconds"
	MetricInFlight        = "eventbus_messages_in_flight"
	MetricPublished       = "eventbus_messages_published_total"
	MetricLag             = "eventbus_consumer_lag_messages"
	MetricPending         = "eventbus_consumer_pending_messages"
	MetricLagErrors       = "eventbus_consumer_lag_errors_total"
)

// Messaging semantic-convention attributes set on publish and handling spans.
const (
	attrSystem      = attribute.Key("messaging.system")
	attrDestination = attribute.Key("messaging.destination.name")
	attrOperation   = attribute.Key("messaging.operation.type")
	attrOperationV1 = attribute.Key("messaging.operation")
	attrMessageID   = attribute.Key("messaging.message.id")
	attrGroup       = attribute.Key("messaging.consumer.group.name")
	attrHandler     = attribute.Key("eventbus.handler")
)

// Telemetry holds a service's metrics (in its own Prometheus registry) and its tracer. Run
// builds one; a service that publishes without Run can build its own and wrap its bus's
// publisher with InstrumentPublisher.
type Telemetry struct {
	// Registry holds every metric; /metrics serves it (with the Go and process collectors).
	Registry *prometheus.Registry

	backend    string
	group      string
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator

	handled, failed, retried, poisoned, published *prometheus.CounterVec
	duration                                      *prometheus.HistogramVec
	inFlight                                      *prometheus.GaugeVec

	mu       sync.Mutex
	inflight map[*message.Message]time.Time
}

// NewTelemetry returns the metrics and tracing of a service on backend, whose consumer group
// is group (may be empty). tp makes the spans; W3C trace context (traceparent, tracestate)
// carries them in message metadata.
func NewTelemetry(backend, group string, tp trace.TracerProvider) *Telemetry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := []string{"topic", "handler", "backend"}
	t := &Telemetry{
		Registry:   reg,
		backend:    backend,
		group:      group,
		tracer:     tp.Tracer("github.com/eventbus-go/eventbus/router"),
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricHandled,
			Help: "Messages whose handler succeeded (after retries)."}, labels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricFailed,
			Help: "Messages whose handler failed its last attempt (then poisoned, or nacked when poison is off)."}, labels),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRetried,
			Help: "Handler attempts after a failed one (retries)."}, labels),
		poisoned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPoisoned,
			Help: "Messages published to a poison topic."}, labels),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricPublished,
			Help: "Messages published, poisoned ones included."}, []string{"topic", "backend"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricHandlerDuration,
			Help:    "Time from a message reaching the handler chain to its outcome, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, labels),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricInFlight,
			Help: "Messages in the handler chain now."}, labels),
		inflight: map[*message.Message]time.Time{},
	}
	reg.MustRegister(t.handled, t.failed, t.retried, t.poisoned, t.published, t.duration, t.inFlight)
	return t
}

func handlerLabels(msg *message.Message) (topic, handler string) {
	ctx := msg.Context()
	return message.SubscribeTopicFromCtx(ctx), message.HandlerNameFromCtx(ctx)
}

// outer is the outermost handler middleware: the handling span (child of the publisher's span
// found in the message's traceparent), in-flight gauge and duration.
func (t *Telemetry) outer(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		topic, handler := handlerLabels(msg)
		ctx := t.propagator.Extract(msg.Context(), propagation.MapCarrier(msg.Metadata))
		ctx, span := t.tracer.Start(ctx, "process "+topic, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attrSystem.String(t.backend), attrDestination.String(topic),
				attrOperation.String("process"), attrOperationV1.String("process"),
				attrMessageID.String(msg.UUID), attrGroup.String(t.group), attrHandler.String(handler)))
		defer span.End()
		msg.SetContext(ctx)

		g := t.inFlight.WithLabelValues(topic, handler, t.backend)
		g.Inc()
		start := time.Now()
		t.mu.Lock()
		t.inflight[msg] = start
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			delete(t.inflight, msg)
			t.mu.Unlock()
			g.Dec()
			t.duration.WithLabelValues(topic, handler, t.backend).Observe(time.Since(start).Seconds())
		}()

		out, err := h(msg)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return out, err
	}
}

// oldestInFlight returns how long the longest-running message has been in the chain (0: none).
func (t *Telemetry) oldestInFlight() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var oldest time.Duration
	for _, start := range t.inflight {
		oldest = max(oldest, time.Since(start))
	}
	return oldest
}

// final counts each message's outcome after retries and tells onOutcome (the consecutive
// error limit).
func (t *Telemetry) final(onOutcome func(err error, msg *message.Message)) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			topic, handler := handlerLabels(msg)
			if err != nil {
				t.failed.WithLabelValues(topic, handler, t.backend).Inc()
			} else {
				t.handled.WithLabelValues(topic, handler, t.backend).Inc()
			}
			if onOutcome != nil {
				onOutcome(err, msg)
			}
			return out, err
		}
	}
}

// attempt counts retries: attempts numbered above 1 by the retry middleware.
func (t *Telemetry) attempt(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if n, err := strconv.Atoi(msg.Metadata.Get(middleware.HeaderAttempt)); err == nil && n > 1 {
			topic, handler := handlerLabels(msg)
			t.retried.WithLabelValues(topic, handler, t.backend).Inc()
		}
		return h(msg)
	}
}

// InstrumentPublisher returns pub with a producer span per message (child of the message's
// context, so of the span in the ctx given to bus.Publish), the span's W3C trace context
// injected into the message's metadata, and the published counter. Run wraps the bus's
// publisher with it, so bus.Publish on Run's bus is traced.
func (t *Telemetry) InstrumentPublisher(pub message.Publisher) message.Publisher {
	return &tracedPublisher{next: pub, t: t}
}

type tracedPublisher struct {
	next message.Publisher
	t    *Telemetry
	// poison marks the publisher the poison middleware uses: its messages count as poisoned.
	poison bool
}

func (p *tracedPublisher) Publish(topic string, msgs ...*message.Message) error {
	spans := make([]trace.Span, 0, len(msgs))
	for _, msg := range msgs {
		ctx, span := p.t.tracer.Start(msg.Context(), "send "+topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attrSystem.String(p.t.backend), attrDestination.String(topic),
				attrOperation.String("send"), attrOperationV1.String("publish"), attrMessageID.String(msg.UUID)))
		// The consumer's extract must see this span, not one carried over from the message
		// being handled (a poisoned copy keeps its metadata).
		delete(msg.Metadata, "traceparent")
		delete(msg.Metadata, "tracestate")
		p.t.propagator.Inject(ctx, propagation.MapCarrier(msg.Metadata))
		msg.SetContext(ctx)
		spans = append(spans, span)
	}
	err := p.next.Publish(topic, msgs...)
	for i, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			p.t.published.WithLabelValues(topic, p.t.backend).Inc()
			if p.poison {
				origTopic, handler := handlerLabels(msgs[i])
				p.t.poisoned.WithLabelValues(origTopic, handler, p.t.backend).Inc()
			}
		}
		span.End()
	}
	return err
}

func (p *tracedPublisher) Close() error { return p.next.Close() }

// lagCollector exports the bus's lag per topic and partition on each scrape.
type lagCollector struct {
	b       *bus.Bus
	topics  []string
	timeout time.Duration

	lag, pending, errs *prometheus.Desc
	mu                 sync.Mutex
	errTotal           map[string]float64
}

func newLagCollector(b *bus.Bus, topics []string) *lagCollector {
	labels := []string{"topic", "group", "partition", "backend"}
	return &lagCollector{
		b: b, topics: topics, timeout: 5 * time.Second,
		lag: prometheus.NewDesc(MetricLag, "Messages of the topic the consumer group has not been handed yet, per partition, stream or queue (Kafka: high watermark minus committed offset; Redis: XINFO GROUPS lag; RabbitMQ: ready messages).",
			labels, nil),
		pending: prometheus.NewDesc(MetricPending, "Messages handed to the consumer group and not yet acknowledged (Redis: XINFO GROUPS pending; not reported on Kafka and RabbitMQ).",
			labels, nil),
		errs:     prometheus.NewDesc(MetricLagErrors, "Lag queries that failed (broker unreachable), per topic.", []string{"topic", "backend"}, nil),
		errTotal: map[string]float64{},
	}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.pending
	ch <- c.errs
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, topic := range c.topics {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		parts, err := c.b.Lag(ctx, topic)
		cancel()
		c.mu.Lock()
		if err != nil && !errors.Is(err, bus.ErrNotSupported) {
			c.errTotal[topic]++
		}
		n := c.errTotal[topic]
		c.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, n, topic, c.b.Backend())
		for _, p := range parts {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(p.Lag), p.Topic, p.Group, p.Partition, c.b.Backend())
			if p.Pending >= 0 {
				ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(p.Pending), p.Topic, p.Group, p.Partition, c.b.Backend())
			}
		}
	}
}
