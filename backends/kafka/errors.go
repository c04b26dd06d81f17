package kafka

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/IBM/sarama"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// What the publisher and subscriber return once closed.
var (
	errPublisherClosed  = fmt.Errorf("kafka publisher %w", driver.ErrClosed)
	errSubscriberClosed = fmt.Errorf("kafka subscriber %w", driver.ErrClosed)
)

// devBrokerHint ends the error of an Open that reached no broker: the usual cause on a
// developer's machine is that no broker was started.
const devBrokerHint = "is a Kafka broker up there? `eventbus dev` serves one on 127.0.0.1:9092"

// classOf returns the portable error class (driver.ErrUnauthorized, ErrUnavailable, ErrClosed,
// ErrInvalidEvent) of an error from Sarama or watermill-kafka, or nil when it has none. Only
// Sarama's typed errors and the standard library's network errors are looked at, never the
// message text:
//
//   - ErrUnauthorized: the broker's error codes SASL_AUTHENTICATION_FAILED (58),
//     UNSUPPORTED_SASL_MECHANISM (33), ILLEGAL_SASL_STATE (34) and the TOPIC_, GROUP_, CLUSTER_
//     and TRANSACTIONAL_ID_AUTHORIZATION_FAILED codes (29, 30, 31, 53).
//   - ErrUnavailable: sarama.ErrOutOfBrokers (no seed broker answered), sarama.ErrNotConnected,
//     sarama.ErrControllerNotAvailable, the retriable broker codes LEADER_NOT_AVAILABLE (5),
//     NOT_LEADER_OR_FOLLOWER (6), REQUEST_TIMED_OUT (7), BROKER_NOT_AVAILABLE (8),
//     NETWORK_EXCEPTION (13), COORDINATOR_NOT_AVAILABLE (15), NOT_COORDINATOR (16),
//     NOT_ENOUGH_REPLICAS (19, 20) and KAFKA_STORAGE_ERROR (56), and any net.Error,
//     connection refused or reset, or EOF from the socket.
//   - ErrClosed: sarama.ErrClosedClient, ErrClosedConsumerGroup and ErrShuttingDown.
//   - ErrInvalidEvent: INVALID_TOPIC_EXCEPTION (17), a topic name Kafka does not accept.
//
// An authorization error wins over unavailability: Sarama wraps a SASL failure from every
// seed broker in ErrOutOfBrokers.
func classOf(err error) error {
	if err == nil {
		return nil
	}
	if c := driver.ClassOf(err); c != nil {
		return c
	}
	switch {
	case isAny(err, sarama.ErrSASLAuthenticationFailed, sarama.ErrUnsupportedSASLMechanism, sarama.ErrIllegalSASLState,
		sarama.ErrTopicAuthorizationFailed, sarama.ErrGroupAuthorizationFailed, sarama.ErrClusterAuthorizationFailed,
		sarama.ErrTransactionalIDAuthorizationFailed):
		return driver.ErrUnauthorized
	case isAny(err, sarama.ErrClosedClient, sarama.ErrClosedConsumerGroup, sarama.ErrShuttingDown):
		return driver.ErrClosed
	case isAny(err, sarama.ErrInvalidTopic):
		return driver.ErrInvalidEvent
	case isAny(err, sarama.ErrOutOfBrokers, sarama.ErrNotConnected, sarama.ErrControllerNotAvailable,
		sarama.ErrLeaderNotAvailable, sarama.ErrNotLeaderForPartition, sarama.ErrRequestTimedOut,
		sarama.ErrBrokerNotAvailable, sarama.ErrNetworkException, sarama.ErrConsumerCoordinatorNotAvailable,
		sarama.ErrNotCoordinatorForConsumer, sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend,
		sarama.ErrKafkaStorageError,
		io.EOF, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, net.ErrClosed):
		return driver.ErrUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return driver.ErrUnavailable
	}
	return nil
}

func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// classify puts err's portable class in its chain, after what when what is not empty (see
// driver.Wrap).
func classify(what string, err error) error { return driver.Wrap(what, classOf(err), err) }
