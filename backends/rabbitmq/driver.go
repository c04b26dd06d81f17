package rabbitmq

import (
	"context"
	"errors"
	"slices"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Name is the backend's name in the config file.
const Name = "rabbitmq"

func init() { driver.Register[Config](Name, backendDriver{}) }

type backendDriver struct{}

func (backendDriver) DefaultConfig() *Config { return DefaultConfig() }

func (backendDriver) Open(ctx context.Context, c *Config, o driver.Options) (*driver.Conn, error) {
	cfg := *c
	if o.ConsumerGroup != "" {
		cfg.ConsumerGroup = o.ConsumerGroup
	}
	if o.MaxInFlight > 0 {
		// A caller that asks for a window of un-acked messages (the ordering middleware, the dlq
		// tool) gets it; the broker must be allowed to send that many, so prefetch grows with it.
		cfg.Consumer.MaxInFlight = o.MaxInFlight
		cfg.Consumer.Prefetch = max(cfg.Consumer.Prefetch, o.MaxInFlight)
	}
	startFrom := cfg.Consumer.StartFrom
	if o.StartFrom != driver.StartDefault {
		startFrom = string(o.StartFrom)
	}
	startFrom, err := streamStart(&cfg, o, startFrom)
	if err != nil {
		return nil, err
	}
	logger := o.Logger.With("backend", Name)

	u, err := cfg.uri()
	if err != nil {
		return nil, err
	}
	ac, err := cfg.amqpConfig(u)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pubConn, err := dialConnection("publish", u, ac, cfg.Reconnect, logger)
	if err != nil {
		return nil, err
	}
	subConn, err := dialConnection("consume", u, ac, cfg.Reconnect, logger)
	if err != nil {
		return nil, errors.Join(err, pubConn.Close())
	}

	topo := topology{cfg: &cfg, temp: &temporaryQueues{}}
	var declare []groupQueue
	if cfg.Publisher.DeclareConsumerGroup && cfg.ConsumerGroup != "" {
		declare = append(declare, groupQueue{group: cfg.ConsumerGroup, temporary: o.TemporaryGroup})
	}
	for _, g := range cfg.Publisher.DeclareGroups {
		if !slices.ContainsFunc(declare, func(d groupQueue) bool { return d.group == g }) {
			declare = append(declare, groupQueue{group: g})
		}
	}
	pub := newPublisher(pubConn, topo, cfg.Publisher, cfg.Reconnect, declare, logger)
	sub := newSubscriber(subConn, topo, cfg.Consumer, cfg.Reconnect, cfg.ConsumerGroup, o.TemporaryGroup, startFrom, logger)
	logger.Info("connected to RabbitMQ", "broker", pubConn.Endpoint(), "consumer_group", cfg.ConsumerGroup, "queue_type", cfg.Queue.Type)

	admin := newAdmin(pubConn, topo, cfg.ConsumerGroup)
	admin.PoisonQueue = poisonQueueOpener(pubConn, topo, pub)
	if cfg.ConsumerGroup != "" {
		admin.BacklogEnd = backlogEnd(pubConn, topo, cfg.ConsumerGroup)
		admin.ConsumeNotes = consumeNotes(pubConn, topo, cfg.ConsumerGroup)
	}
	return &driver.Conn{
		Publisher:    pub,
		Subscriber:   sub,
		Capabilities: capabilities(&cfg),
		Lag:          lagFunc(pubConn, topo, cfg.ConsumerGroup),
		Admin:        admin,
		As: func(target any) bool {
			switch t := target.(type) {
			case **amqp.Connection:
				conn, err := pubConn.Current()
				if err != nil {
					return false
				}
				*t = conn
				return true
			case **Connection:
				*t = pubConn
				return true
			case *[]string:
				*t = []string{pubConn.Endpoint()}
				return true
			}
			return false
		},
	}, nil
}

// capabilities declares what the backend, as configured, guarantees.
func capabilities(cfg *Config) driver.Capabilities {
	stream := cfg.Queue.Type == QueueStream
	exclusive := cfg.ConsumerGroup == "" && !stream
	caps := driver.Capabilities{
		ConsumerGroups:  !stream && !exclusive && !cfg.Queue.SingleActiveConsumer,
		PerKeyOrdering:  (cfg.Queue.SingleActiveConsumer || stream) && cfg.Consumer.MaxInFlight <= 1,
		Persistence:     cfg.Publisher.Confirms && cfg.Publisher.Persistent && cfg.Queue.Durable && cfg.Exchange.Durable && !exclusive,
		Replay:          stream,
		Pipelining:      cfg.Consumer.MaxInFlight > 1,
		MaxMessageBytes: cfg.Publisher.MaxMessageBytes,
		Notes:           map[driver.Capability]string{},
	}
	n := caps.Notes
	switch {
	case stream:
		n[driver.ConsumerGroups] = "a stream queue is read whole by every subscriber; instances of a group do not share the work"
		n[driver.PerKeyOrdering] = "a stream is read in publish order by each subscriber"
		n[driver.Replay] = "from the oldest message the stream retains (x-stream-offset first); AMQP consumers keep no offset, so each subscription starts at consumer.start_from"
	case exclusive:
		n[driver.ConsumerGroups] = "consumer_group is empty: each subscription has a private queue that lives only while it is connected"
		n[driver.Persistence] = "consumer_group is empty: private queues are deleted with their connection"
	case cfg.Queue.SingleActiveConsumer:
		n[driver.ConsumerGroups] = "with queue.single_active_consumer one instance of a group consumes at a time and the others stand by: instances do not share the work (every group still gets every message)"
		n[driver.Replay] = "only with queue.type: stream; a classic or quorum queue forgets acknowledged messages, and a new group's queue holds only messages published after it was declared"
	default:
		n[driver.PerKeyOrdering] = "only with queue.single_active_consumer: true (one instance of a group consumes at a time)"
		n[driver.Replay] = "only with queue.type: stream; a classic or quorum queue forgets acknowledged messages, and a new group's queue holds only messages published after it was declared"
	}
	if !caps.Persistence && !exclusive {
		n[driver.Persistence] = "needs publisher.confirms, publisher.persistent, queue.durable and exchange.durable all true"
	} else if caps.Persistence && cfg.Queue.Type == QueueClassic {
		n[driver.Persistence] = "a classic queue lives on one node: it survives a restart, not the node's loss; quorum queues are replicated"
	}
	if !caps.Pipelining {
		n[driver.Pipelining] = "consumer.max_in_flight is 1: messages are handed out one at a time, each after the previous is acked; raise it to hand out more"
	} else if cfg.Queue.SingleActiveConsumer || stream {
		n[driver.PerKeyOrdering] = "max_in_flight > 1 hands messages out before earlier ones are acked, so a nacked one comes back after later ones; the ordering middleware (router.ordering) restores per-key order on top of it"
	}
	n[driver.ReplayByTime] = "with queue.type stream, bus.WithStartAt starts a subscription at a time (whole seconds) and bus.WithStartPosition at a stream offset; not declared until the conformance suite covers it"
	n[driver.NativeDelay] = "needs the delayed-message exchange plugin, which this backend does not use"
	return caps
}
