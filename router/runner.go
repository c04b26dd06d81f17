package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// ErrTooManyErrors is what Run returns after router.max_consecutive_errors handler failures in
// a row: the service should exit non-zero so that its orchestrator restarts it.
var ErrTooManyErrors = errors.New("too many consecutive handler failures")

// Handler is one of a consumer service's handlers: Run subscribes it to Topic in the bus's
// consumer group. Name labels its metrics and logs; it must be unique within the service.
type Handler struct {
	Name   string
	Topic  string
	Handle message.NoPublishHandlerFunc
}

// Runner runs a consumer service: the bus and router that the config file describes, the
// service's handlers, the health and metrics server, tracing, logging and signal handling.
// Run(ctx, cfg, handlers...) is the usual way to use it; the fields are for the rest.
type Runner struct {
	// Config is the loaded config file: backend, backend section, router: section.
	Config *config.Config
	// Handlers are the service's handlers.
	Handlers []Handler
	// BusOptions are passed to bus.Open (a codec, required capabilities); the runner adds its
	// logger.
	BusOptions []bus.Option
	// LogOutput is where the logger built from router.log writes. Default: os.Stderr.
	LogOutput io.Writer
	// Exit ends the process on a second signal. Default: os.Exit.
	Exit func(code int)
	// Listening, when set, is called with the HTTP server's address once it listens.
	Listening func(addr net.Addr)
	// KeepGlobals leaves slog's default logger and OpenTelemetry's global tracer provider and
	// propagator as they are: for a service that embeds the runner beside code of its own and
	// sets them itself. Default false: Run makes its logger and tracer provider the globals
	// while it runs, and puts the previous ones back when it returns.
	KeepGlobals bool
}

// Run runs handlers as a consumer service configured by cfg until ctx ends or the process gets
// SIGTERM or SIGINT; see Runner.Run.
func Run(ctx context.Context, cfg *config.Config, handlers ...Handler) error {
	return (&Runner{Config: cfg, Handlers: handlers}).Run(ctx)
}

// Run does, in order:
//
//  1. builds the logger (router.log, made slog's default) and the tracer provider
//     (router.tracing, made OpenTelemetry's global, with W3C trace context propagation),
//     unless KeepGlobals; the previous globals are put back when Run returns;
//  2. serves /healthz, /readyz and /metrics on router.http.addr;
//  3. with router.enabled: false, stops there: the process idles, not ready, until a signal;
//  4. opens the bus, wraps its publisher with a span and trace context per message, builds the
//     router with the router: section's middleware plus the runner's metrics and handling
//     spans, and subscribes every handler; /readyz turns true once all are subscribed, and
//     stays true while a lag query (bus.Lag) reaches the broker;
//  5. on the first SIGTERM or SIGINT (or ctx's end): /readyz turns false and the router
//     drains: it stops handing out messages and waits up to router.close_timeout for running
//     handlers; then the bus is closed and Run returns nil. A second signal calls Exit(1) at
//     once.
//
// After router.max_consecutive_errors handler failures in a row it logs the reason, drains
// likewise and returns an error wrapping ErrTooManyErrors. It returns the first error that
// stops the service: an invalid config, a bus that does not open, a busy HTTP port.
func (r *Runner) Run(ctx context.Context) error {
	rc, err := LoadConfig(r.Config)
	if err != nil {
		return err
	}
	out := r.LogOutput
	if out == nil {
		out = os.Stderr
	}
	logger := NewLogger(rc.Log, out)
	if !r.KeepGlobals {
		prev := slog.Default()
		slog.SetDefault(logger)
		defer slog.SetDefault(prev)
	}
	exit := r.Exit
	if exit == nil {
		exit = os.Exit
	}
	if err := r.checkHandlers(); err != nil {
		return err
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	tp, err := newTracerProvider(ctx, rc.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			logger.Warn("tracer shutdown", "err", err)
		}
	}()
	if !r.KeepGlobals {
		prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
		defer func() {
			otel.SetTracerProvider(prevTP)
			otel.SetTextMapPropagator(prevProp)
		}()
	}

	topics := make([]string, 0, len(r.Handlers))
	for _, h := range r.Handlers {
		topics = append(topics, h.Topic)
	}
	tel := NewTelemetry(r.Config.Backend, r.group(), tp)
	hs := &health{tel: tel, stuck: stuckLimit(rc), topics: topics, probe: 2 * time.Second}
	httpErr := make(chan error, 1)
	if rc.HTTP.Addr != "" {
		srv, addr, err := serve(rc.HTTP.Addr, hs.handler(), httpErr)
		if err != nil {
			return err
		}
		logger.Info("serving health and metrics", "addr", addr.String(), "paths", []string{PathHealthz, PathReadyz, PathMetrics})
		if r.Listening != nil {
			r.Listening(addr)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}

	if !rc.Enabled {
		logger.Warn("router.enabled is false: consuming nothing until restarted with it true (kill switch)", "topics", topics)
		select {
		case s := <-sigs:
			logger.Info("signal: exiting", "signal", s.String())
		case <-ctx.Done():
		case err := <-httpErr:
			return err
		}
		return nil
	}

	b, err := bus.Open(ctx, r.Config, append(append([]bus.Option(nil), r.BusOptions...), bus.WithLogger(logger))...)
	if err != nil {
		return err
	}
	defer func() {
		if err := b.Close(); err != nil {
			logger.Warn("closing the bus", "err", err)
		}
	}()
	raw := b.Publisher
	b.Publisher = tel.InstrumentPublisher(raw)
	poisonPub := &tracedPublisher{next: raw, t: tel, poison: true}
	if err := tel.Registry.Register(newLagCollector(b, topics)); err != nil {
		return fmt.Errorf("register lag metrics: %w", err)
	}
	hs.bus.Store(b)

	fatal := make(chan error, 1)
	var consecutive atomic.Int64
	var fatalOnce sync.Once
	onOutcome := func(err error, msg *message.Message) {
		if err == nil {
			consecutive.Store(0)
			return
		}
		n := consecutive.Add(1)
		if rc.MaxConsecutiveErrors > 0 && n >= int64(rc.MaxConsecutiveErrors) {
			fatalOnce.Do(func() {
				fatal <- fmt.Errorf("%w: %d in a row (router.max_consecutive_errors), the last on message %s: %w", ErrTooManyErrors, n, msg.UUID, err)
			})
		}
	}
	dr := newDrainer()
	defer dr.deadline()
	outer := func(h message.HandlerFunc) message.HandlerFunc { return dr.middleware(tel.outer(h)) }
	rt, err := New(b, rc, WithLogger(logger), WithPoisonPublisher(poisonPub),
		withHooks(hooks{outer: outer, final: tel.final(onOutcome), attempt: tel.attempt}))
	if err != nil {
		return err
	}
	for _, h := range r.Handlers {
		rt.AddConsumerHandler(h.Name, h.Topic, b.Subscriber, h.Handle)
	}

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	routerDone := make(chan error, 1)
	go func() { routerDone <- rt.Run(runCtx) }()
	go func() {
		select {
		case <-rt.Running():
			hs.subscribed.Store(true)
			logger.Info("consuming", "backend", b.Backend(), "topics", topics)
		case <-runCtx.Done():
		}
	}()

	var stopErr error
	draining := false
	drain := func(reason string, args ...any) {
		if draining {
			return
		}
		draining = true
		hs.subscribed.Store(false)
		dr.start(rc.CloseTimeout)
		logger.Info(reason+": draining", append(args, "close_timeout", rc.CloseTimeout.String())...)
		cancelRun()
	}
	ctxDone := ctx.Done()
	for {
		select {
		case s := <-sigs:
			if draining {
				logger.Error("second signal: exiting at once without waiting for running handlers", "signal", s.String())
				exit(1)
				return fmt.Errorf("second signal %s", s)
			}
			drain("signal", "signal", s.String())
		case <-ctxDone:
			ctxDone = nil
			drain("context done")
		case err := <-fatal:
			logger.Error("exiting: consecutive handler failures reached router.max_consecutive_errors; the orchestrator should restart this consumer", "limit", rc.MaxConsecutiveErrors, "err", err)
			stopErr = err
			drain("error limit")
		case err := <-httpErr:
			stopErr = err
			drain("http server failed", "err", err)
		case err := <-routerDone:
			hs.subscribed.Store(false)
			if err != nil {
				logger.Error("router stopped", "err", err)
			} else {
				logger.Info("drained; closing the bus")
			}
			return errors.Join(stopErr, err)
		}
	}
}

// drainer keeps the contexts of running handlers alive through a drain: when the router closes
// its subscriber, a backend may cancel the contexts of the messages it handed out; from the
// first signal on, a handler's context ends only at the drain deadline (close_timeout after
// the signal). Outside a drain the subscriber's cancellation (a Kafka partition revoked, say)
// reaches the handler as before.
type drainer struct {
	draining atomic.Bool
	ctx      context.Context
	cancel   context.CancelFunc
	once     sync.Once
}

func newDrainer() *drainer {
	ctx, cancel := context.WithCancel(context.Background())
	return &drainer{ctx: ctx, cancel: cancel}
}

// start begins the drain: handler contexts end after timeout.
func (d *drainer) start(timeout time.Duration) {
	d.once.Do(func() {
		d.draining.Store(true)
		time.AfterFunc(timeout, d.cancel)
	})
}

// deadline ends the drain now.
func (d *drainer) deadline() { d.cancel() }

func (d *drainer) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		parent := msg.Context()
		ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
		defer cancel()
		stopParent := context.AfterFunc(parent, func() {
			if !d.draining.Load() {
				cancel()
			}
		})
		defer stopParent()
		stopDrain := context.AfterFunc(d.ctx, cancel)
		defer stopDrain()
		msg.SetContext(ctx)
		return h(msg)
	}
}

func (r *Runner) checkHandlers() error {
	if len(r.Handlers) == 0 {
		return errors.New("router: Run needs at least one handler")
	}
	seen := map[string]bool{}
	for i, h := range r.Handlers {
		switch {
		case h.Name == "":
			return fmt.Errorf("router: handler %d has no name", i)
		case seen[h.Name]:
			return fmt.Errorf("router: two handlers are named %q", h.Name)
		case h.Topic == "":
			return fmt.Errorf("router: handler %s has no topic", h.Name)
		case h.Handle == nil:
			return fmt.Errorf("router: handler %s has no Handle function", h.Name)
		}
		seen[h.Name] = true
	}
	return nil
}

// group is the consumer group the bus will subscribe in, for span attributes: a
// WithConsumerGroup bus option, else the backend section's consumer_group.
func (r *Runner) group() string {
	var o bus.Options
	for _, opt := range r.BusOptions {
		opt(&o)
	}
	if o.ConsumerGroup != "" {
		return o.ConsumerGroup
	}
	bc, err := bus.BackendConfig(r.Config)
	if err != nil {
		return ""
	}
	v := reflect.ValueOf(bc)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	if f := v.FieldByName("ConsumerGroup"); f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

// NewLogger builds the slog logger that router.log describes, writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	level, err := parseLevel(c.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// newTracerProvider builds the SDK tracer provider: always, so that spans have ids and trace
// context flows from publisher to handler; exporting only with exporter otlp.
func newTracerProvider(ctx context.Context, c TracingConfig) (*sdktrace.TracerProvider, error) {
	name := c.ServiceName
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	}
	if c.Exporter == "otlp" {
		var eo []otlptracehttp.Option
		if c.Endpoint != "" {
			u := c.Endpoint
			if parsed, err := url.Parse(u); err == nil && (parsed.Path == "" || parsed.Path == "/") {
				u = strings.TrimSuffix(u, "/") + "/v1/traces" // the OTLP/HTTP traces path
			}
			eo = append(eo, otlptracehttp.WithEndpointURL(u))
		}
		exp, err := otlptracehttp.New(ctx, eo...)
		if err != nil {
			return nil, fmt.Errorf("router.tracing: OTLP exporter to %q: %w", c.Endpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}
