package middleware

import (
	"errors"
	"fmt"
)

var (
	// ErrPermanent is matched (errors.Is) by every error wrapped with Permanent: retrying it
	// cannot help, so it goes straight to the poison queue.
	ErrPermanent = errors.New("permanent error")

	// ErrPoisonPublish is wrapped by the error the poison middleware returns when it could not
	// store a failed message in the poison queue; the message is then nacked, never dropped.
	ErrPoisonPublish = errors.New("cannot publish to the poison queue")
)

// Permanent marks err as one that retrying cannot fix (a validation failure, a record that no
// longer exists): the retry middleware stops at once and the poison middleware stores the
// message with reason "permanent". Permanent(nil) is nil.
//
//	if order.Status == "" {
//		return middleware.Permanent(fmt.Errorf("order %s has no status", order.ID))
//	}
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with Permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == ErrPermanent }

// PanicError is what the recoverer middleware turns a handler's panic into: the value it
// panicked with and the goroutine's stack at that point. It is retried like any other error.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("handler panicked: %v\n%s", e.Value, e.Stack)
}
