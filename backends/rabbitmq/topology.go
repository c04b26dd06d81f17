package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// ErrInvalidTopic is wrapped by Publish's and Subscribe's errors for a topic that cannot be
// mapped onto RabbitMQ names. It wraps driver.ErrInvalidEvent.
var ErrInvalidTopic = fmt.Errorf("%w: invalid topic", driver.ErrInvalidEvent)

// topology maps topics and consumer groups onto RabbitMQ's exchanges, queues and bindings and
// declares them. Declarations are idempotent; a declaration whose arguments differ from the
// existing entity's fails with PRECONDITION_FAILED, reported with what to fix.
type topology struct {
	cfg  *Config
	temp *temporaryQueues // nil: nothing is recorded
}

// temporaryQueues records the queues declared for a temporary group (and their dead-letter
// queues), which Close deletes at once rather than leaving them to x-expires.
type temporaryQueues struct {
	mu    sync.Mutex
	names map[string]struct{}
}

func (q *temporaryQueues) add(names ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.names == nil {
		q.names = map[string]struct{}{}
	}
	for _, n := range names {
		if n != "" {
			q.names[n] = struct{}{}
		}
	}
}

func (q *temporaryQueues) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	names := make([]string, 0, len(q.names))
	for n := range q.names {
		names = append(names, n)
	}
	q.names = nil
	return names
}

// deleteTemporary deletes the temporary group's queues declared so far, on conn. A queue that
// cannot be deleted (the broker is unreachable) is logged and left to expire after
// queue.temporary_group_expiry.
func (t topology) deleteTemporary(conn *Connection, logger *slog.Logger) {
	if t.temp == nil {
		return
	}
	names := t.temp.take()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ch *amqp.Channel
	for _, name := range names {
		var err error
		if ch == nil || ch.IsClosed() { // a failed delete closes the channel
			if ch, err = conn.Channel(ctx); err != nil {
				logger.Warn("cannot delete the temporary group's queues; they expire once unused", "queues", names, "expiry", t.cfg.Queue.TemporaryGroupExpiry, "error", err)
				return
			}
		}
		if _, err = ch.QueueDelete(name, false, false, false); err != nil {
			logger.Warn("cannot delete a temporary group's queue; it expires once unused", "queue", name, "expiry", t.cfg.Queue.TemporaryGroupExpiry, "error", err)
		}
	}
	if ch != nil {
		_ = ch.Close()
	}
}

func (t topology) stream() bool { return t.cfg.Queue.Type == QueueStream }

// checkTopic refuses topics RabbitMQ cannot carry as a routing key, or that a topic exchange
// would read as a wildcard pattern in a binding.
func (t topology) checkTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topic is empty: %w", ErrInvalidTopic)
	case len(topic) > 200:
		// Routing keys and queue names are at most 255 bytes; leave room for the group.
		return fmt.Errorf("topic %.40q... is %d bytes, longer than 200: %w", topic, len(topic), ErrInvalidTopic)
	case !utf8.ValidString(topic):
		return fmt.Errorf("topic %q is not UTF-8: %w", topic, ErrInvalidTopic)
	case t.cfg.Exchange.Type == "topic" && strings.ContainsAny(topic, "*#"):
		return fmt.Errorf("topic %q contains * or #, which a topic exchange reads as wildcards: %w", topic, ErrInvalidTopic)
	}
	return nil
}

func (t topology) exchangeName(topic string) string {
	return strings.ReplaceAll(t.cfg.Exchange.Name, "{topic}", topic)
}

// queueName is the queue a group reads topic from: the topic's stream for queue type stream,
// a server-named exclusive queue ("") for the empty group, else the group's own queue.
func (t topology) queueName(topic, group string) string {
	if t.stream() {
		return strings.ReplaceAll(t.cfg.Stream.Name, "{topic}", topic)
	}
	if group == "" {
		return ""
	}
	return strings.NewReplacer("{topic}", topic, "{group}", group).Replace(t.cfg.Queue.Name)
}

func (t topology) declareExchange(ch *amqp.Channel, topic string) error {
	name := t.exchangeName(topic)
	if err := ch.ExchangeDeclare(name, t.cfg.Exchange.Type, t.cfg.Exchange.Durable, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s (%s): %w%s", name, t.cfg.Exchange.Type, err, preconditionHint(err, "exchange.type or exchange.durable"))
	}
	return nil
}

// declareQueue declares the exchange, the queue group reads topic from and the binding between
// them, and returns the queue's name (the server's name for the empty group).
func (t topology) declareQueue(ch *amqp.Channel, topic, group string, temporary bool) (string, error) {
	if err := t.declareExchange(ch, topic); err != nil {
		return "", err
	}
	name := t.queueName(topic, group)
	args, err := t.queueArgs(topic, group, temporary)
	if err != nil {
		return "", err
	}
	durable, autoDelete, exclusive := t.cfg.Queue.Durable, false, false
	if group == "" && !t.stream() {
		durable, autoDelete, exclusive = false, true, true
	}
	if dead := t.deadLetterName(name); dead != "" && group != "" && !t.stream() {
		// Declared first, so that the broker has somewhere to put a dead letter from the start.
		if _, err := ch.QueueDeclare(dead, durable, false, false, false, t.deadLetterArgs(temporary)); err != nil {
			return "", fmt.Errorf("declare dead-letter queue %s: %w%s", dead, err, preconditionHint(err, "queue.type or queue.durable"))
		}
	}
	q, err := ch.QueueDeclare(name, durable, autoDelete, exclusive, false, args)
	if err != nil {
		return "", fmt.Errorf("declare queue %s: %w%s", name, err,
			preconditionHint(err, "queue.type, queue.durable, queue.single_active_consumer, queue.delivery_limit, queue.dead_letter_queue, queue.max_length_bytes, queue.max_length, queue.overflow or queue.arguments (or the group was declared temporary once and not now)"))
	}
	if temporary && group != "" && !t.stream() && t.temp != nil {
		t.temp.add(q.Name, t.deadLetterName(q.Name))
	}
	ex := t.exchangeName(topic)
	if err := ch.QueueBind(q.Name, topic, ex, false, nil); err != nil {
		return "", fmt.Errorf("bind queue %s to exchange %s with routing key %s: %w", q.Name, ex, topic, err)
	}
	return q.Name, nil
}

func (t topology) queueArgs(topic, group string, temporary bool) (amqp.Table, error) {
	args, err := toTable(t.cfg.Queue.Arguments)
	if err != nil {
		return nil, fmt.Errorf("queue.arguments: %w", err)
	}
	switch {
	case t.stream():
		args["x-queue-type"] = QueueStream
		if t.cfg.Stream.MaxAge > 0 {
			args["x-max-age"] = fmt.Sprintf("%ds", int64(t.cfg.Stream.MaxAge.Seconds()))
		}
		if t.cfg.Stream.MaxBytes > 0 {
			args["x-max-length-bytes"] = t.cfg.Stream.MaxBytes
		}
		return args, nil // a stream belongs to the topic, not to a group: it never expires
	case group == "":
		t.bound(args, true)
		return args, nil // exclusive queues are classic and go with their connection
	}
	args["x-queue-type"] = t.cfg.Queue.Type
	if t.cfg.Queue.SingleActiveConsumer {
		args["x-single-active-consumer"] = true
	}
	if t.cfg.Queue.Type == QueueQuorum && t.cfg.Queue.DeliveryLimit > 0 {
		args["x-delivery-limit"] = t.cfg.Queue.DeliveryLimit
	}
	if dead := t.deadLetterName(t.queueName(topic, group)); dead != "" {
		args["x-dead-letter-exchange"] = "" // the default exchange routes by queue name
		args["x-dead-letter-routing-key"] = dead
	}
	if temporary {
		args["x-expires"] = t.cfg.Queue.TemporaryGroupExpiry.Milliseconds()
	}
	t.bound(args, temporary)
	return args, nil
}

// deadLetterName is the dead-letter queue of queue, "" when dead-lettering is off.
func (t topology) deadLetterName(queue string) string {
	if t.cfg.Queue.DeadLetterQueue == "" || queue == "" {
		return ""
	}
	return strings.ReplaceAll(t.cfg.Queue.DeadLetterQueue, "{queue}", queue)
}

// deadLetterArgs declare a dead-letter queue: of the group queue's type, expiring with it when
// the group is temporary, and without a dead-letter target of its own.
func (t topology) deadLetterArgs(temporary bool) amqp.Table {
	args := amqp.Table{"x-queue-type": t.cfg.Queue.Type}
	if t.cfg.Queue.Type == QueueQuorum && t.cfg.Queue.DeliveryLimit > 0 {
		args["x-delivery-limit"] = t.cfg.Queue.DeliveryLimit // RabbitMQ 4's default of 20 would discard
	}
	if temporary {
		args["x-expires"] = t.cfg.Queue.TemporaryGroupExpiry.Milliseconds()
	}
	// Bounded like the group's queue, so that no queue the bus declares grows without limit;
	// full, it drops its oldest dead letters (a dead letter refused by a full queue would be
	// dropped anyway: dead-lettering is not confirmed).
	t.bound(args, true)
	return args
}

// consumeArgs are basic.consume's arguments: where a stream consumer starts.
func (t topology) consumeArgs(startFrom string) amqp.Table {
	if !t.stream() {
		return nil
	}
	return amqp.Table{"x-stream-offset": streamOffsetArg(startFrom)}
}

func preconditionHint(err error, what string) string {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return " (it exists with other settings: align " + what + " with it, or delete it)"
	}
	return ""
}

// QueueName returns the queue consumer group reads topic from under this configuration (the
// topic's stream for queue.type stream), for tools that inspect queues without declaring them.
func (c *Config) QueueName(topic, group string) string {
	return topology{cfg: c}.queueName(topic, group)
}

// ExchangeName returns the exchange topic is published to under this configuration.
func (c *Config) ExchangeName(topic string) string { return topology{cfg: c}.exchangeName(topic) }

// DeleteQueue deletes a queue on a channel of its own, for tools that clean up after
// themselves (the conformance and bench commands): a queue that is not there closes the channel
// with 404, which is not an error here. A connection the broker closed is waited for (until ctx
// ends), so that a cleanup after a long run does not fail on a dropped connection.
func (c *Connection) DeleteQueue(ctx context.Context, name string) error {
	ch, err := c.Channel(ctx)
	if err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	defer ch.Close()
	var ae *amqp.Error
	if _, err := ch.QueueDelete(name, false, false, false); err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	return nil
}
