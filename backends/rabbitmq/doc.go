// Package rabbitmq is the eventbus driver for RabbitMQ, registered as backend "rabbitmq":
// import it for its side effect and write `backend: rabbitmq` in the config file.
//
//	import _ "github.com/eventbus-go/eventbus/backends/rabbitmq"
//
// # Topology
//
// Publish sends to one exchange (rabbitmq.exchange.name, default "eventbus", type topic) with
// the topic as routing key. Each consumer group has one queue per topic ("{group}.{topic}" by
// default) bound to it with that routing key: every group gets every message, and the
// instances of a group compete for the messages of its queue. Queues are quorum queues by
// default (replicated and durable, as RabbitMQ recommends); classic queues and stream queues
// are configurable.
//
// # Delivery semantics
//
//   - At-least-once. Publish returns after the broker's publisher confirm for every message,
//     on a pool of confirming channels (rabbitmq.publisher). A message that no queue would take
//     is returned by the broker (mandatory) and Publish fails with ErrUnroutable instead of the
//     message being dropped. A group's queue exists once the group subscribed; to keep
//     messages for groups that have not subscribed yet, list them in publisher.declare_groups
//     and Publish declares their queues. It never declares its own group's queue unless
//     publisher.declare_consumer_group says so: a service usually publishes topics it never
//     reads, and such a queue would only fill up.
//   - Bounded queues: every group queue the bus declares carries x-max-length-bytes
//     (queue.max_length_bytes, 1 GiB by default; queue.max_length by count) with x-overflow
//     reject-publish, so once a group falls that far behind the broker nacks further messages
//     and Publish fails with ErrNacked (class bus.ErrUnavailable) instead of the queue growing
//     until the broker's memory alarm blocks every publisher. Queues of temporary and
//     exclusive groups (tooling) drop their oldest messages instead.
//   - While the broker is unreachable, Publish retries with backoff until its context's
//     deadline, or publisher.timeout when the context has none, and then fails naming the first
//     message not confirmed. A message whose confirm was lost with its connection is sent
//     again: the broker may then hold it twice. Subscriptions re-subscribe after a lost
//     connection; messages handed out and not acked are redelivered.
//   - Order: RabbitMQ keeps a queue's order, but the competing instances of a group do not.
//     With queue.single_active_consumer one instance consumes at a time and order holds per
//     group (PerKeyOrdering); a nacked message is then handed out again in place. With
//     consumer.max_in_flight above 1 the subscriber hands out that many messages at once
//     (Pipelining) and a nacked one comes back after later ones, so per-key order is then the
//     ordering middleware's to keep (router.ordering), and PerKeyOrdering is not declared.
//   - Replay: classic and quorum queues forget acknowledged messages, so a new group sees only
//     messages published after its queue was declared. Replay (bus.Replay) needs queue.type:
//     stream: one stream per topic, read by each subscription from consumer.start_from.
//
// # Connections
//
// The driver keeps two AMQP connections, one for publishing and one for consuming, on
// github.com/rabbitmq/amqp091-go, and re-establishes them itself. It does not use
// watermill-amqp's publisher, subscriber or ConnectionWrapper: in v3.1.0 the wrapper writes its
// connected flag from the reconnect goroutine without a lock while Publish reads it (a data
// race), and the publisher opens a channel per Publish and has confirms off by default.
// Messages published by watermill-amqp are read (their UUID header is understood), and its
// MetadataRedeliveredKey marks redelivered messages.
//
// Bus.As gives the live *amqp091.Connection used for publishing (it changes after a reconnect)
// or the *rabbitmq.Connection that keeps it up.
//
// # Errors
//
// Errors wrap the portable classes of package bus, with amqp091's *Error (its reply code and
// text) or the network error left in the chain for errors.As. Only reply codes and typed errors
// are read, never the message text:
//
//   - bus.ErrUnauthorized: 403 ACCESS_REFUSED (a wrong username or password, amqp091's
//     ErrCredentials; no access to the vhost, ErrVhost; no shared SASL mechanism, ErrSASL; a
//     permission missing on an exchange or queue) and 530 NOT_ALLOWED.
//   - bus.ErrUnavailable: a net.Error (connection refused, reset, dial timeout), EOF, 320
//     CONNECTION_FORCED (the broker closing the connection, on a restart say), 506
//     RESOURCE_ERROR, 541 INTERNAL_ERROR, amqp091's ErrClosed, a channel lost before its
//     confirms, and ErrNotConnected while the connection is being re-established (a Publish
//     that gave up at its deadline wraps it). Open fails with it when nothing answers within
//     dial_timeout, naming the broker.
//   - bus.ErrClosed: ErrPublisherClosed and ErrSubscriberClosed, which Publish and Subscribe
//     return after Close (and a Publish that Close interrupted).
//
// ErrNacked (a full queue refused the message) is bus.ErrUnavailable: publishing again later,
// once the group's consumers caught up, may succeed. ErrUnroutable has no portable class: no
// other backend refuses a message that way.
package rabbitmq
