package middleware

import (
	"runtime/debug"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Recoverer turns a panic in the handler into a *PanicError carrying the panic value and the
// stack, so that the panic is retried and, if it persists, poisoned like any other failure
// instead of crashing the consumer. (Watermill's router also recovers, but only to nack the
// message, which then comes back forever.)
func Recoverer(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if v := recover(); v != nil {
				out, err = nil, &PanicError{Value: v, Stack: string(debug.Stack())}
			}
		}()
		return h(msg)
	}
}
