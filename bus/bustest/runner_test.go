package bustest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The runner that `eventbus conformance` uses reports what a check did the way go test does:
// Fatalf and Skipf end the check, Errorf lets it go on, a panic is a failure, and cleanups run
// afterwards, last registered first.
func TestRunnerOutcomes(t *testing.T) {
	var order []string
	for _, tc := range []struct {
		name   string
		fn     func(T, *env)
		want   Outcome
		detail string
	}{
		{"pass", func(t T, _ *env) { t.Logf("fine") }, Pass, ""},
		{"fatal", func(t T, _ *env) {
			t.Cleanup(func() { order = append(order, "first registered") })
			t.Cleanup(func() { order = append(order, "last registered") })
			t.Fatalf("broken: %d", 42)
			order = append(order, "after Fatalf")
		}, Fail, "broken: 42"},
		{"errors go on", func(t T, _ *env) {
			t.Errorf("first problem")
			t.Errorf("second problem")
			order = append(order, "after Errorf")
		}, Fail, "first problem"},
		{"skip", func(t T, _ *env) { t.Skipf("needs %s", "a restart hook"); t.Errorf("not reached") }, Skip, "needs a restart hook"},
		{"panic", func(T, *env) { panic("boom") }, Fail, "panic: boom"},
		{"deadline", func(t T, s *env) { <-s.ctx.Done(); t.Fatalf("no event before the deadline") }, Fail, "no event before the deadline"},
	} {
		order = nil
		h := &Harness{Name: "none", Timeout: 50 * time.Millisecond}
		h.setDefaults()
		r := runOne(context.Background(), Check{Name: tc.name, fn: tc.fn}, h)
		if r.Outcome != tc.want || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: outcome %s %q, want %s %q", tc.name, r.Outcome, r.Detail, tc.want, tc.detail)
		}
		switch tc.name {
		case "fatal":
			if strings.Join(order, ",") != "last registered,first registered" {
				t.Errorf("fatal: ran %v; want the cleanups last first and nothing after Fatalf", order)
			}
		case "errors go on":
			if len(order) != 1 {
				t.Errorf("Errorf ended the check: %v", order)
			}
		}
	}
}

func TestSelect(t *testing.T) {
	sel, err := Select("^Middleware/")
	if err != nil {
		t.Fatal(err)
	}
	if !sel("Middleware/Retry") || sel("Delivery") {
		t.Error("Select does not match names as a regular expression")
	}
	if _, err := Select("("); err == nil || !strings.Contains(err.Error(), `check pattern "("`) {
		t.Errorf("a bad pattern gives %v", err)
	}
}

func TestMatrix(t *testing.T) {
	got := Matrix([]Result{
		{Backend: "a", Check: "Delivery", Outcome: Pass},
		{Backend: "a", Check: "Pipelining", Capability: "pipelining", Declared: true, Outcome: Pass},
		{Backend: "a", Check: "Middleware/OrderingConcurrency", Capability: "pipelining", Declared: true, Outcome: Fail},
		{Backend: "a", Check: "Persistence", Capability: "persistence", Declared: true, Outcome: Skip},
		{Backend: "b", Check: "Pipelining", Capability: "pipelining", Outcome: Skip},
	})
	for _, want := range []string{
		"| capability | a | b |\n|---|---|---|\n",
		"| pipelining | **FAILS** | no |\n",
		"| persistence | declared, not checked | ? |\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("matrix lacks %q:\n%s", want, got)
		}
	}
}
