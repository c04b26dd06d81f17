package bus

import "errors"

var (
	// ErrNotSupported is returned, wrapped with the backend's name and the capability, when a
	// caller asks a backend for something it cannot do (replay on RabbitMQ classic queues, say).
	// It is returned at start-up, by Open or Bus.Require, never at the first message.
	ErrNotSupported = errors.New("not supported")

	// ErrInvalidEvent is wrapped by Publish's errors for an event that cannot be sent as is
	// (no type, no source, a reserved metadata key), and by ParseEvent's and DecodeData's for a
	// consumed one that cannot be read (so it is poisoned without retries).
	ErrInvalidEvent = errors.New("invalid event")

	// ErrUnknownBackend is wrapped by Open's error when no driver is registered under the name.
	ErrUnknownBackend = errors.New("unknown backend")

	// ErrClosed is returned by Publish after Close.
	ErrClosed = errors.New("bus closed")
)
