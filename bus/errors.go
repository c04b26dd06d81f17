package bus

import "github.com/eventbus-go/eventbus/bus/driver"

// The portable error classes: every driver wraps its client's errors with one of them, so
// errors.Is works the same on every backend, and keeps the client's own error in the chain, so
// errors.As still reaches it (a sarama.KError, an *amqp091.Error, a *net.OpError). They are the
// same values as bus/driver's. Some errors have no class (a rejected config, a message
// RabbitMQ could not route, rabbitmq.ErrUnroutable): they are the backend's own, documented by
// its package.
//
// What each backend maps to them (its package documentation has the full list):
//
//   - ErrClosed: Publish or Subscribe after Close, on every backend; Sarama's ErrClosedClient
//     and ErrShuttingDown; go-redis's ErrClosed.
//   - ErrUnauthorized: Kafka's SASL_AUTHENTICATION_FAILED and *_AUTHORIZATION_FAILED codes;
//     Redis's NOAUTH, WRONGPASS and NOPERM; RabbitMQ's 403 ACCESS_REFUSED and 530 NOT_ALLOWED.
//   - ErrUnavailable: on every backend a net.Error (refused, reset, timed out) or EOF from the
//     socket; Sarama's ErrOutOfBrokers and the retriable broker codes (LEADER_NOT_AVAILABLE,
//     REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS, ...); Redis's LOADING, MASTERDOWN, CLUSTERDOWN
//     and TRYAGAIN; RabbitMQ's 320 CONNECTION_FORCED, a lost channel,
//     rabbitmq.ErrNotConnected while the driver reconnects, and rabbitmq.ErrNacked when a full
//     queue (queue.max_length_bytes) refused the message.
//
// Open's ErrUnavailable error names the broker's address and asks whether the broker is up.
var (
	// ErrNotSupported is returned, wrapped with the backend's name and the capability, when a
	// caller asks a backend for something it cannot do (replay on RabbitMQ classic queues, say).
	// Open and Bus.Require return it at start-up, never at the first message.
	ErrNotSupported = driver.ErrNotSupported

	// ErrClosed is wrapped by what a closed bus, publisher or subscriber returns: Bus.Publish,
	// Publisher.Publish and Subscriber.Subscribe after Close, on every backend, and a Publish
	// that Close interrupted.
	ErrClosed = driver.ErrClosed

	// ErrUnauthorized: the broker refused the credentials or the permissions (a wrong
	// password, a user without access to the topic, group or vhost). Fix the config; retrying
	// does not help. Open returns it for a wrong password on every backend.
	ErrUnauthorized = driver.ErrUnauthorized

	// ErrUnavailable: the broker could not be reached or did not answer in time (nothing
	// listens, the connection was lost, the cluster has no leader); retrying later may help.
	// Open returns it when no broker answers within the configured dial timeout; Publish
	// returns it once the client gives up during an outage.
	ErrUnavailable = driver.ErrUnavailable

	// ErrTooLarge: a message exceeds the backend's size limit.
	ErrTooLarge = driver.ErrTooLarge

	// ErrInvalidEvent is wrapped by Publish's errors for an event that cannot be sent as is
	// (no type, no source, a reserved metadata key), and by ParseEvent's and DecodeData's for a
	// consumed one that cannot be read (so it is poisoned without retries).
	ErrInvalidEvent = driver.ErrInvalidEvent

	// ErrUnknownBackend is wrapped by Open's error when no driver is registered under the name.
	ErrUnknownBackend = driver.ErrUnknownBackend

	// ErrInvalidPosition is wrapped by Open's and Rewind's errors for a position that is not in
	// the backend's format (WithStartPosition, RewindTarget.Position), and by a subscription's
	// for one that names a partition the topic does not have.
	ErrInvalidPosition = driver.ErrInvalidPosition
)
