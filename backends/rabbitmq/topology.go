package rabbitmq

import (
	"errors"
	"fmt"
	"strings"
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
	cfg *Config
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
	args, err := t.queueArgs(group, temporary)
	if err != nil {
		return "", err
	}
	durable, autoDelete, exclusive := t.cfg.Queue.Durable, false, false
	if group == "" && !t.stream() {
		durable, autoDelete, exclusive = false, true, true
	}
	q, err := ch.QueueDeclare(name, durable, autoDelete, exclusive, false, args)
	if err != nil {
		return "", fmt.Errorf("declare queue %s: %w%s", name, err,
			preconditionHint(err, "queue.type, queue.durable, queue.single_active_consumer, queue.max_length_bytes, queue.max_length, queue.overflow or queue.arguments (or the group was declared temporary once and not now)"))
	}
	ex := t.exchangeName(topic)
	if err := ch.QueueBind(q.Name, topic, ex, false, nil); err != nil {
		return "", fmt.Errorf("bind queue %s to exchange %s with routing key %s: %w", q.Name, ex, topic, err)
	}
	return q.Name, nil
}

func (t topology) queueArgs(group string, temporary bool) (amqp.Table, error) {
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
	if temporary {
		args["x-expires"] = t.cfg.Queue.TemporaryGroupExpiry.Milliseconds()
	}
	t.bound(args, temporary)
	return args, nil
}

// consumeArgs are basic.consume's arguments: where a stream consumer starts.
func (t topology) consumeArgs(startFrom string) amqp.Table {
	if !t.stream() {
		return nil
	}
	offset := "first"
	if startFrom == "newest" {
		offset = "next"
	}
	return amqp.Table{"x-stream-offset": offset}
}

func preconditionHint(err error, what string) string {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return " (it exists with other settings: align " + what + " with it, or delete it)"
	}
	return ""
}
