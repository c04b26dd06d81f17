package bus

import "github.com/eventbus-go/eventbus/bus/driver"

// The portable error classes: every driver wraps its client's errors with one of them, so
// errors.Is works the same on every backend. They are the same values as bus/driver's.
var (
	// ErrNotSupported is returned, wrapped with the backend's name and the capability, when a
	// caller asks a backend for something it cannot do (replay on RabbitMQ classic queues, say).
	// Open and Bus.Require return it at start-up, never at the first message.
	ErrNotSupported = driver.ErrNotSupported

	// ErrClosed is wrapped by what a closed bus, publisher or subscriber returns.
	ErrClosed = driver.ErrClosed

	// ErrUnauthorized: the broker refused the credentials or the permissions. Fix the config;
	// retrying does not help.
	ErrUnauthorized = driver.ErrUnauthorized

	// ErrUnavailable: the broker could not be reached or did not answer in time; retrying
	// later may help.
	ErrUnavailable = driver.ErrUnavailable

	// ErrTooLarge: a message exceeds the backend's size limit.
	ErrTooLarge = driver.ErrTooLarge

	// ErrInvalidEvent is wrapped by Publish's errors for an event that cannot be sent as is
	// (no type, no source, a reserved metadata key), and by ParseEvent's and DecodeData's for a
	// consumed one that cannot be read (so it is poisoned without retries).
	ErrInvalidEvent = driver.ErrInvalidEvent

	// ErrUnknownBackend is wrapped by Open's error when no driver is registered under the name.
	ErrUnknownBackend = driver.ErrUnknownBackend
)
