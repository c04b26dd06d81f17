// Package bus is the publish/subscribe API that eventbus services code against, the same over
// every broker: the config file picks the backend (Kafka by default, Redis Streams or RabbitMQ),
// and swapping brokers is a config change, never a code change.
//
// A *Bus holds Watermill's message.Publisher and message.Subscriber for the chosen broker, the
// Capabilities that backend declares, and Close. Publish wraps data in a CloudEvents 1.0
// envelope carried as message metadata (binary mode) under the header names Open edX uses on
// Kafka (ce_id, ce_type, ce_source, ce_time, ce_specversion, content-type), plus an ordering key.
//
//	cfg, err := config.LoadOrDefault("eventbus.yaml")
//	b, err := bus.Open(ctx, cfg, bus.Require(bus.Replay))
//	defer b.Close()
//	err = b.Publish(ctx, "enrollments", bus.Event{
//		Type: "org.openedx.learning.course.enrollment.created.v1",
//		Source: "openedx/lms/web", Key: userID, Data: enrollment,
//	})
//
// # Delivery semantics
//
// Every backend delivers at least once: a message is redelivered until a handler acks it, so
// handlers must be idempotent. What else holds depends on the backend, and Capabilities says
// it: Kafka keeps order per key and can replay; Redis Streams keeps order only with one consumer
// per group and keeps data only as far as the server persists it; RabbitMQ keeps neither order
// (unless a single active consumer is configured) nor a replayable history (unless a stream
// queue is). Ask for what you rely on with Require; a missing capability is an error at
// start-up, not a surprise in production.
package bus
