package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventbus-go/eventbus/bus"
)

// HTTP paths Run serves on router.http.addr.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
)

// stuckAfter is how long one message may stay in the handler chain before /healthz reports
// the process stuck, when the configuration does not bound it more tightly (see stuckLimit).
const stuckAfter = 10 * time.Minute

// health is the state behind /healthz and /readyz.
type health struct {
	tel   *Telemetry
	stuck time.Duration

	// subscribed is set once the router runs its handlers, cleared when draining starts.
	subscribed atomic.Bool
	bus        atomic.Pointer[bus.Bus]
	topics     []string
	probe      time.Duration
}

// stuckLimit is the longest a message can legitimately spend in the chain: router.http.stuck_after
// when set; else every attempt timing out plus the waits between them, when the configuration
// bounds them; else stuckAfter.
func stuckLimit(c Config) time.Duration {
	if c.HTTP.StuckAfter > 0 {
		return c.HTTP.StuckAfter
	}
	if c.HandlerTimeout <= 0 {
		return stuckAfter
	}
	limit := time.Duration(c.Retry.MaxAttempts)*c.HandlerTimeout + time.Duration(c.Retry.MaxAttempts)*c.Retry.MaxInterval
	return max(limit+time.Minute, time.Minute)
}

// live reports why the process is not alive, or nil: a message has been in its handler longer
// than any configured bound allows (the loop is stuck).
func (h *health) live() error {
	if h.tel == nil {
		return nil
	}
	if d := h.tel.oldestInFlight(); d > h.stuck {
		return fmt.Errorf("a message has been in its handler for %s (limit %s): the handler loop looks stuck", d.Round(time.Second), h.stuck)
	}
	return nil
}

// ready reports why the process should get no traffic, or nil: not subscribed (before start,
// while draining, or disabled), or the broker does not answer a lag query.
func (h *health) ready(ctx context.Context) error {
	if !h.subscribed.Load() {
		return errors.New("not subscribed (starting, draining, or router.enabled is false)")
	}
	b := h.bus.Load()
	if b == nil {
		return errors.New("no bus")
	}
	for _, topic := range h.topics {
		if err := probeLag(ctx, b, topic, h.probe); err != nil {
			return fmt.Errorf("broker unreachable: %w", err)
		}
	}
	return nil
}

// probeLag asks for topic's lag, giving up after timeout even where the driver's client does
// not honour the context (sarama's requests are bounded by its own, longer, timeouts).
func probeLag(ctx context.Context, b *bus.Bus, topic string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := b.Lag(ctx, topic)
		errc <- err
	}()
	select {
	case err := <-errc:
		if errors.Is(err, bus.ErrNotSupported) {
			return nil
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("lag of %s: no answer within %s: %w", topic, timeout, bus.ErrUnavailable)
	}
}

func (h *health) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PathHealthz, func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, h.live())
	})
	mux.HandleFunc(PathReadyz, func(w http.ResponseWriter, r *http.Request) {
		writeProbe(w, h.ready(r.Context()))
	})
	if h.tel != nil {
		mux.Handle(PathMetrics, promhttp.HandlerFor(h.tel.Registry, promhttp.HandlerOpts{}))
	}
	return mux
}

func writeProbe(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// serve listens on addr and serves h until Shutdown; it returns the listener's address (the
// port when addr asked for :0).
func serve(addr string, h http.Handler, errc chan<- error) (*http.Server, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("router.http.addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server on %s: %w", addr, err)
		}
	}()
	return srv, ln.Addr(), nil
}
