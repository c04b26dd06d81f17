package middleware

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// HeaderAttempt is the metadata key holding the number of the attempt in progress, from 1: a
// handler reads it with Attempt(msg). The retry middleware sets it before each attempt.
const HeaderAttempt = "eventbus_attempt"

// Attempt returns the number of the current handling attempt of msg, from 1 (1 also when no
// retry middleware runs).
func Attempt(msg *message.Message) int {
	n, err := strconv.Atoi(msg.Metadata.Get(HeaderAttempt))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// failures is what the attempts on one delivery of a message went through; the poison
// middleware creates it and puts it in the message's context, the retry middleware (inside it)
// records each failed attempt, and the poison middleware writes it into the provenance.
type failures struct {
	mu          sync.Mutex
	attempts    int
	first, last time.Time
}

type failuresKey struct{}

func withFailures(ctx context.Context, f *failures) context.Context {
	return context.WithValue(ctx, failuresKey{}, f)
}

func failuresFrom(ctx context.Context) *failures {
	f, _ := ctx.Value(failuresKey{}).(*failures)
	return f
}

// record counts one failed attempt at time now.
func (f *failures) record(now time.Time) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.first.IsZero() {
		f.first = now
	}
	f.last = now
}

// snapshot returns the attempts and failure times so far; a failure nobody recorded (no retry
// middleware ran) counts as one attempt failing now.
func (f *failures) snapshot(now time.Time) (attempts int, first, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attempts == 0 {
		return 1, now, now
	}
	return f.attempts, f.first, f.last
}
