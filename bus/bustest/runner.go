package bustest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/eventbus-go/eventbus/bus"
)

// Outcome is how a check ended.
type Outcome string

// The outcomes of a check.
const (
	Pass Outcome = "pass"
	Fail Outcome = "fail"
	Skip Outcome = "skip"
)

// Result is the outcome of one check against one backend.
type Result struct {
	// Check is the check's name, e.g. "ConsumerGroups" or "Middleware/Retry".
	Check string `json:"check"`
	// Backend is the harness's Name.
	Backend string `json:"backend"`
	// Capability is the capability the check holds the backend to; empty for checks every
	// backend must pass.
	Capability bus.Capability `json:"capability,omitempty"`
	// Declared says whether the backend declared Capability (false when there is none).
	Declared bool    `json:"declared"`
	Outcome  Outcome `json:"result"`
	// Duration is how long the check ran, cleanups included.
	Duration time.Duration `json:"duration_ns"`
	// Detail is the first failure's message, or the reason for a skip.
	Detail string `json:"detail,omitempty"`
}

// RunChecks runs the checks that selected accepts (nil: all) against h, one after the other,
// outside `go test`, and returns their results. ctx bounds the whole run: a check still
// running when it ends fails.
func RunChecks(ctx context.Context, h Harness, selected func(name string) bool) []Result {
	h.setDefaults()
	var results []Result
	for _, c := range Checks() {
		if selected != nil && !selected(c.Name) {
			continue
		}
		r := runOne(ctx, c, &h)
		r.Backend = h.Name
		results = append(results, r)
	}
	return results
}

func runOne(ctx context.Context, c Check, h *Harness) Result {
	start := time.Now()
	cctx, cancel := context.WithCancel(ctx)
	rt := &runT{name: c.Name, ctx: cctx}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				rt.Errorf("panic: %v", p)
			}
		}()
		c.run(rt, h)
	}()
	<-done
	cancel()
	rt.runCleanups()
	res := Result{Check: c.Name, Capability: c.Capability, Duration: time.Since(start), Outcome: Pass}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.declared != nil {
		res.Declared = *rt.declared
	}
	switch {
	case rt.failed:
		res.Outcome = Fail
		res.Detail = rt.firstError
	case rt.skipped:
		res.Outcome = Skip
		res.Detail = rt.skipReason
	}
	return res
}

// runT is RunChecks's T: it records failures and skips, ends the check's goroutine on Fatalf,
// FailNow and Skipf, as package testing does, and runs cleanups after the check.
type runT struct {
	name string
	ctx  context.Context

	mu         sync.Mutex
	failed     bool
	skipped    bool
	firstError string
	skipReason string
	declared   *bool
	cleanups   []func()
	logs       []string
}

func (r *runT) Helper()                  {}
func (r *runT) Name() string             { return r.name }
func (r *runT) Context() context.Context { return r.ctx }

func (r *runT) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	if r.firstError == "" {
		r.firstError = strings.TrimSpace(fmt.Sprintf(format, args...))
	}
}

func (r *runT) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *runT) FailNow() {
	r.mu.Lock()
	r.failed = true
	if r.firstError == "" {
		r.firstError = "failed"
	}
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *runT) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = true
	r.skipReason = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *runT) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *runT) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runT) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *runT) setDeclared(d bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.declared = &d
}

// runCleanups runs the cleanups last first; a cleanup that fails the check (Fatalf) or panics
// does not stop the others.
func (r *runT) runCleanups() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() {
				if p := recover(); p != nil {
					r.Errorf("cleanup panic: %v", p)
				}
			}()
			f()
		}()
		<-done
	}
}
