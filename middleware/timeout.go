package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Timeout bounds each handler attempt: the message's context gets a deadline d from the start
// of the attempt, and a handler that honours its context returns context.DeadlineExceeded,
// which is retried like any other error. A handler that ignores its context is not stopped
// (Go cannot stop a goroutine); it only finds a cancelled context in its calls. d must be
// positive.
func Timeout(d time.Duration) (message.HandlerMiddleware, error) {
	if d <= 0 {
		return nil, fmt.Errorf("timeout %s: must be positive", d)
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			parent := msg.Context()
			ctx, cancel := context.WithTimeout(parent, d)
			defer cancel()
			msg.SetContext(ctx)
			out, err := h(msg)
			msg.SetContext(parent)
			return out, err
		}
	}, nil
}
