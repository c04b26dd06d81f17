package main

import (
	"strings"
	"testing"
	"time"

	"github.com/eventbus-go/eventbus/bus"
)

// FuzzDLQTimes feeds --since and --until whatever an operator may type. Parsing must not panic;
// a rejection names the flag and quotes the value; an accepted duration is that long before now
// and an accepted time is the one given.
func FuzzDLQTimes(f *testing.F) {
	for _, s := range []string{"2h", "90m", "0", "1h30m", "2026-11-23T12:00:00Z", "2026-11-23T12:00:00.123456789+01:00",
		"-2h", "yesterday", "2026-11-23", "2026-13-01T00:00:00Z", "9999999999h", "1e3s", " 2h", "2h ", ""} {
		f.Add(s, "1h")
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, since, until string) {
		fl := &dlqFlags{since: since, until: until, window: 1, wait: time.Second}
		err := fl.parse(now, dlqList)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "--since: ") && !strings.Contains(msg, "--until: ") {
				t.Fatalf("rejection names no flag: %v", err)
			}
			if !strings.Contains(msg, "is neither an RFC 3339 time") {
				t.Fatalf("rejection does not say what to give: %v", err)
			}
			return
		}
		for _, c := range []struct {
			in  string
			got time.Time
		}{{since, fl.from}, {until, fl.to}} {
			if c.in == "" {
				if !c.got.IsZero() {
					t.Fatalf("%q parsed as %s, want no bound", c.in, c.got)
				}
				continue
			}
			if d, err := time.ParseDuration(c.in); err == nil {
				if d < 0 || !c.got.Equal(now.Add(-d)) {
					t.Fatalf("%q parsed as %s, want %s ago", c.in, c.got, d)
				}
				continue
			}
			want, err := time.Parse(time.RFC3339Nano, c.in)
			if err != nil || !c.got.Equal(want) {
				t.Fatalf("%q accepted as %s", c.in, c.got)
			}
		}
	})
}

// FuzzStartFrom feeds consume --from. A rejection says what to give; an accepted value is one
// of the three positions.
func FuzzStartFrom(f *testing.F) {
	for _, s := range []string{"oldest", "newest", "earliest", "latest", "beginning", "end", "", " Oldest ", "sideways", "1732363200000-0", "2026-11-23T12:00:00Z", "3:1742"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		from, err := bus.ParseStartFrom(s)
		if err != nil {
			if !strings.Contains(err.Error(), "want oldest or newest") {
				t.Fatalf("unclear rejection of %q: %v", s, err)
			}
			return
		}
		switch from {
		case bus.StartDefault, bus.StartOldest, bus.StartNewest:
		default:
			t.Fatalf("%q accepted as %q", s, from)
		}
		if from == bus.StartDefault && strings.TrimSpace(s) != "" {
			t.Fatalf("%q accepted as the default", s)
		}
	})
}
