// Package bustest checks that a backend keeps the guarantees it declares: one conformance
// suite, run against real brokers, for every backend. A declared capability must pass its
// check; an undeclared one must be refused by bus.Require with bus.ErrNotSupported, and its
// check is skipped with the reason, never reported as passed.
//
// The suite takes a Harness, not a backend: it imports no backend package, so it runs against
// any driver and any deployment. In a test:
//
//	func TestOurBroker(t *testing.T) {
//		cfg, _ := config.Load("eventbus.yaml")
//		bustest.Run(t, bustest.ConfigHarness(cfg))
//	}
//
// The same checks run outside `go test`: a check takes a T, the part of testing.TB it needs,
// and RunChecks runs them with its own T and returns one Result per check, which is what
// `eventbus conformance` prints.
//
// What it covers: delivery with the envelope intact, redelivery after a nack, consumer groups
// sharing the work, per-key ordering, replay from the oldest event, replay by time (with a
// harness hook), pipelining, the router's middleware (retry, poison queue with provenance,
// redrive, ordering with concurrency, deduplication) and bad input (invalid topics, events
// that cannot be decoded). Persistence across a broker restart needs a Restart hook; without
// one, each backend's fault tests cover it.
package bustest

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// T is what a check needs of its runner: *testing.T provides it, and so does RunChecks's own.
// Fatalf, FailNow and Skipf end the check (runtime.Goexit); Cleanup functions run after it,
// last registered first. Context is cancelled when the check ends, before its cleanups.
type T interface {
	Helper()
	Name() string
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	FailNow()
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	Context() context.Context
}

// Harness tells the suite how to reach the backend under test and what it can do beyond the
// portable API. Only Open is required.
type Harness struct {
	// Name labels the results, e.g. "kafka" or "rabbitmq (stream)". Default: the backend's
	// name as the first opened bus reports it.
	Name string
	// Open opens a bus in the named consumer group (made up per check: a throwaway group),
	// whose new subscriptions start from the oldest retained message. A check may add options
	// (bus.WithMaxInFlight); they come after the harness's own. The suite closes the bus.
	Open func(ctx context.Context, group string, opts ...bus.Option) (*bus.Bus, error)
	// Topic returns a topic name no other check uses and registers with t.Cleanup whatever
	// removes the topic and its poison topic ("<topic>.poison") from the broker. Default:
	// "eventbus-conformance-<random>", never removed.
	Topic func(t T) string
	// OpenAt opens a bus in a new consumer group that starts reading at the first message
	// published at or after at: ReplayByTime. Nil: Open with bus.WithStartAt(at), the portable
	// way; a harness sets it to check another (Redis: start_from as an RFC 3339 time).
	OpenAt func(ctx context.Context, group string, at time.Time) (*bus.Bus, error)
	// Restart restarts the broker, keeping what it persisted, and returns once it serves
	// again. Nil: the Persistence check is skipped (each backend's fault tests cover it).
	Restart func(ctx context.Context) error
	// RejectedTopic is a topic name the broker (or driver) refuses, e.g. "bad topic!" on
	// Kafka. Empty: only the empty topic is checked.
	RejectedTopic string
	// Timeout bounds each check. Default: 60s.
	Timeout time.Duration
}

// ConfigHarness opens buses from cfg, as a service would, with a discarding logger. Its
// topics are "eventbus-conformance-<random>" and are not removed; set Topic to clean up.
func ConfigHarness(cfg *config.Config) Harness {
	return Harness{
		Name: cfg.Backend,
		Open: func(ctx context.Context, group string, opts ...bus.Option) (*bus.Bus, error) {
			base := []bus.Option{bus.WithTemporaryGroup(group), bus.WithStartFrom(bus.StartOldest),
				bus.WithLogger(slog.New(slog.DiscardHandler))}
			return bus.Open(ctx, cfg, append(base, opts...)...)
		},
	}
}

func (h *Harness) setDefaults() {
	if h.Topic == nil {
		h.Topic = func(T) string { return "eventbus-conformance-" + watermill.NewShortUUID() }
	}
	if h.Timeout == 0 {
		h.Timeout = 60 * time.Second
	}
}

// Run runs every check as a subtest of t and returns the results of those that ran (go test
// -run selects); a capability the backend does not declare shows as a skipped subtest with
// the reason.
func Run(t *testing.T, h Harness) []Result {
	t.Helper()
	h.setDefaults()
	var results []Result
	for _, c := range Checks() {
		start := time.Now()
		var r *Result
		t.Run(c.Name, func(t *testing.T) {
			rec := &recorder{T: t}
			defer func() { res := rec.result(c, time.Since(start)); r = &res }()
			c.run(rec, &h)
		})
		if r == nil {
			continue // not selected by -run
		}
		r.Backend = h.Name
		results = append(results, *r)
	}
	return results
}

// recorder remembers what a check reported, for its Result, while its runner (*testing.T)
// does the rest.
type recorder struct {
	T
	detail   string
	skipped  bool
	declared *bool
}

func (r *recorder) Errorf(format string, args ...any) {
	r.note(format, args...)
	r.T.Errorf(format, args...)
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.note(format, args...)
	r.T.Fatalf(format, args...)
}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.detail = fmt.Sprintf(format, args...)
	r.T.Skipf(format, args...)
}

func (r *recorder) note(format string, args ...any) {
	if r.detail == "" {
		r.detail = fmt.Sprintf(format, args...)
	}
}

func (r *recorder) result(c Check, d time.Duration) Result {
	res := Result{Check: c.Name, Capability: c.Capability, Duration: d, Detail: r.detail, Outcome: Pass}
	if r.declared != nil {
		res.Declared = *r.declared
	}
	switch {
	case r.T.Failed():
		res.Outcome = Fail
	case r.skipped:
		res.Outcome = Skip
	}
	return res
}

func (r *recorder) setDeclared(d bool) { r.declared = &d }

// declare records whether the check's capability is declared, for the Result.
func declare(t T, declared bool) {
	if d, ok := t.(interface{ setDeclared(bool) }); ok {
		d.setDeclared(declared)
	}
}

// Select returns the checks whose name matches pattern (a regular expression, as go test
// -run takes it); an empty pattern selects all.
func Select(pattern string) (func(name string) bool, error) {
	if pattern == "" {
		return func(string) bool { return true }, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("check pattern %q: %w", pattern, err)
	}
	return re.MatchString, nil
}
