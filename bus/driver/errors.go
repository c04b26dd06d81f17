package driver

import (
	"errors"
	"fmt"
)

// The portable error classes. Every driver maps its client's errors onto them (wrapping, so the
// client's own error stays in the chain for errors.As), so that a caller can react the same way
// on every backend with errors.Is. package bus re-exports them.
var (
	// ErrNotSupported: the backend, as configured, cannot do what was asked (a capability it
	// does not declare, replay on a queue without history). Returned at start-up where it can be.
	ErrNotSupported = errors.New("not supported")

	// ErrClosed: the publisher, subscriber or bus was closed.
	ErrClosed = errors.New("closed")

	// ErrUnauthorized: the broker refused the credentials or the permissions (SASL failure,
	// NOAUTH/WRONGPASS, ACCESS_REFUSED). Retrying does not help; fix the config.
	ErrUnauthorized = errors.New("unauthorized")

	// ErrUnavailable: the broker could not be reached or did not answer in time. Retrying later
	// may help.
	ErrUnavailable = errors.New("broker unavailable")

	// ErrTooLarge: a message exceeds the backend's size limit: the section's
	// publisher.max_message_bytes, checked before sending, or the broker's own (Kafka's
	// message.max.bytes).
	ErrTooLarge = errors.New("message too large")

	// ErrInvalidEvent: an event cannot be sent as is (no type, a reserved header, a bad topic
	// name), or a consumed one cannot be read (so it is poisoned without retries).
	ErrInvalidEvent = errors.New("invalid event")

	// ErrUnknownBackend: no driver is registered under the name.
	ErrUnknownBackend = errors.New("unknown backend")

	// ErrInvalidPosition: a position (Options.StartPosition, a Rewind target) is not in the
	// driver's format, or names a partition or stream the topic does not have.
	ErrInvalidPosition = errors.New("invalid position")
)

// classes are the portable classes ClassOf looks for, most specific first.
var classes = []error{ErrClosed, ErrUnauthorized, ErrTooLarge, ErrInvalidEvent, ErrNotSupported, ErrUnavailable}

// ClassOf returns the portable class err already wraps (ErrClosed, ErrUnauthorized,
// ErrUnavailable, ...), or nil. Drivers use it to avoid wrapping an error in a class twice.
func ClassOf(err error) error {
	for _, c := range classes {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// Wrap puts class in err's chain, after what when what is not empty: "what: class: err", so
// that errors.Is finds the class and errors.As still finds the client's error. A driver calls
// it with the class its own mapping found for err. When class is nil, or err already wraps a
// portable class, err is only prefixed with what (or returned as it is when what is empty).
func Wrap(what string, class, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case class == nil || ClassOf(err) != nil:
		if what == "" {
			return err
		}
		return fmt.Errorf("%s: %w", what, err)
	case what == "":
		return fmt.Errorf("%w: %w", class, err)
	}
	return fmt.Errorf("%s: %w: %w", what, class, err)
}
