// Package kafka is the eventbus backend for Apache Kafka, the default one: each topic is a
// Kafka topic, each consumer group a Kafka consumer group, and an event's ordering key the
// record key, so that a key's events stay in one partition and in order. Import it for its
// side effect; `backend: kafka` is the default of the config file.
//
//	import _ "github.com/eventbus-go/eventbus/backends/kafka"
//
// The client is watermill-kafka v3 on github.com/IBM/sarama (the maintained Sarama; Bus.As
// gives its *sarama.Config). With a consumer group and kafka.consumer.max_in_flight above 0
// (the default is 1) the subscriber is this package's own pipelined consumer-group subscriber,
// on Sarama directly: it drains on close, committing what handlers ack meanwhile, where
// Watermill's (max_in_flight 0) drops the record in a handler. Package embedded runs
// an in-process Kafka-protocol broker for development (`eventbus dev` serves one on
// 127.0.0.1:9092) and tests.
//
// # Topics and retention
//
// With kafka.topics.create (the default) the publisher and subscriber create a missing topic
// through the admin API, with topics.partitions and topics.replication_factor. The broker's
// retention bounds every topic: log.retention.hours (168h unless the cluster changed it) and
// log.retention.bytes (no limit by size by default). topics.retention and
// topics.retention_bytes give the topics the bus creates a retention.ms and retention.bytes of
// their own; topics that already exist keep theirs.
//
// # Errors
//
// Errors wrap the portable classes of package bus, with Sarama's own error (a sarama.KError,
// sarama.ErrOutOfBrokers, ...) left in the chain for errors.As. Only Sarama's typed errors and
// the broker's error codes are read, never the message text:
//
//   - bus.ErrUnauthorized: SASL_AUTHENTICATION_FAILED (58, a wrong username or password),
//     UNSUPPORTED_SASL_MECHANISM (33), ILLEGAL_SASL_STATE (34), and TOPIC_, GROUP_, CLUSTER_
//     and TRANSACTIONAL_ID_AUTHORIZATION_FAILED (29, 30, 31, 53: an ACL refuses the user). It
//     wins over ErrUnavailable: Sarama reports a SASL failure of every seed broker as
//     ErrOutOfBrokers.
//   - bus.ErrUnavailable: sarama.ErrOutOfBrokers (no broker answered), ErrNotConnected,
//     ErrControllerNotAvailable, the retriable codes LEADER_NOT_AVAILABLE (5),
//     NOT_LEADER_OR_FOLLOWER (6), REQUEST_TIMED_OUT (7), BROKER_NOT_AVAILABLE (8),
//     NETWORK_EXCEPTION (13), COORDINATOR_NOT_AVAILABLE (15), NOT_COORDINATOR (16),
//     NOT_ENOUGH_REPLICAS (19, 20) and KAFKA_STORAGE_ERROR (56), and a net.Error (refused,
//     reset, dial timeout) or EOF. Open fails with it when no broker answers, naming the
//     brokers; a Publish fails with it once the producer's retries are spent.
//   - bus.ErrClosed: Publish after the publisher's Close, Subscribe after the subscriber's,
//     sarama.ErrClosedClient, ErrClosedConsumerGroup and ErrShuttingDown.
//   - bus.ErrInvalidEvent: INVALID_TOPIC_EXCEPTION (17), a topic name Kafka does not accept.
//
// A broker that drops the connection on a failed SASL authentication instead of answering
// with code 58 (SASL v0 handshakes, some test brokers) is seen by Sarama as EOF, hence
// ErrUnavailable: Sarama gives no typed error that tells it apart from a broker going away.
package kafka
