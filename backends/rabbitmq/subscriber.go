package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// ErrSubscriberClosed is returned by Subscribe after Close. It wraps driver.ErrClosed.
var ErrSubscriberClosed = fmt.Errorf("rabbitmq subscriber %w", driver.ErrClosed)

// subscriber consumes each topic from its consumer group's queue (or the topic's stream). Each
// subscription owns a goroutine that consumes, hands messages out, and re-subscribes on a new
// channel after the channel or connection is lost, until its context ends or Close.
//
// A message handed out and not yet acked when its channel is lost is redelivered by the broker
// (at-least-once); an ack for it on the dead channel is dropped, never applied to another
// message, because every message acks through the channel it came from.
type subscriber struct {
	conn      *Connection
	topo      topology
	cfg       ConsumerConfig
	rc        ReconnectConfig
	group     string
	temporary bool
	startFrom string // stream queues: oldest or newest
	logger    *slog.Logger

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	closeDone chan struct{} // closed when the first Close has returned
	subs      sync.WaitGroup
}

func newSubscriber(conn *Connection, topo topology, cfg ConsumerConfig, rc ReconnectConfig, group string, temporary bool, startFrom string, logger *slog.Logger) *subscriber {
	return &subscriber{conn: conn, topo: topo, cfg: cfg, rc: rc, group: group, temporary: temporary,
		startFrom: startFrom, logger: logger, closing: make(chan struct{}), closeDone: make(chan struct{})}
}

// Subscribe declares topic's queue for the group (exchange, queue, binding), starts consuming
// and returns the messages. The channel closes when ctx ends or the subscriber is closed.
// Errors that will not go away (a queue declared elsewhere with other arguments, access
// refused) are returned here; a lost connection is instead retried in the background.
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.topo.checkTopic(topic); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.subs.Add(1)
	s.mu.Unlock()

	sub := &subscription{s: s, topic: topic, out: make(chan *message.Message),
		logger: s.logger.With("topic", topic, "consumer_group", s.group)}
	c, err := sub.open()
	if err != nil && !retryable(err) {
		s.subs.Done()
		return nil, classify(fmt.Sprintf("subscribe to %s as group %q", topic, s.group), err)
	}
	if err != nil {
		sub.logger.Warn("cannot consume yet; retrying in the background", "error", err)
	}
	go sub.run(ctx, c)
	return sub.out, nil
}

// SubscribeInitialize declares topic's queue for the group without consuming (Watermill's
// message.SubscribeInitializer), so that messages published from now on wait for the group.
func (s *subscriber) SubscribeInitialize(topic string) error {
	if err := s.topo.checkTopic(topic); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := s.conn.Channel(ctx)
	if err != nil {
		return classify("", err)
	}
	defer ch.Close()
	_, err = s.topo.declareQueue(ch, topic, s.group, s.temporary)
	return classify("", err)
}

// Close ends every subscription, draining each (see ConsumerConfig.DrainTimeout: messages
// handed out get that long to be settled; those not acked then go back to their queue), and
// closes the consuming connection.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone // a later call returns once the first has drained, as Bus.Close relies on
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	defer close(s.closeDone)
	s.subs.Wait()
	s.topo.deleteTemporary(s.conn, s.logger)
	return s.conn.Close()
}

type subscription struct {
	s      *subscriber
	topic  string
	out    chan *message.Message
	logger *slog.Logger
}

// consumer is one channel consuming a queue.
type consumer struct {
	ch         *amqp.Channel
	queue      string
	deliveries <-chan amqp.Delivery
	closes     chan *amqp.Error
}

// open sets up a channel that consumes the topic's queue.
func (sub *subscription) open() (*consumer, error) {
	s := sub.s
	conn, _, _, err := s.conn.current()
	if err != nil {
		return nil, err
	}
	ch, err := s.conn.openChannel(conn)
	if err != nil {
		return nil, err
	}
	c, err := sub.consumeOn(ch)
	if err != nil {
		_ = ch.Close()
		return nil, err
	}
	return c, nil
}

func (sub *subscription) consumeOn(ch *amqp.Channel) (*consumer, error) {
	s := sub.s
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("set prefetch %d: %w", s.cfg.Prefetch, err)
	}
	queue, err := s.topo.declareQueue(ch, sub.topic, s.group, s.temporary)
	if err != nil {
		return nil, err
	}
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	exclusive := s.group == "" && !s.topo.stream()
	deliveries, err := ch.Consume(queue, "", false, exclusive, false, false, s.topo.consumeArgs(s.startFrom))
	if err != nil {
		return nil, fmt.Errorf("consume from queue %s: %w", queue, err)
	}
	return &consumer{ch: ch, queue: queue, deliveries: deliveries, closes: closes}, nil
}

// run consumes until ctx ends or the subscriber closes, re-subscribing after a loss.
func (sub *subscription) run(ctx context.Context, c *consumer) {
	s := sub.s
	defer s.subs.Done()
	defer close(sub.out)
	bo := newBackoff(s.rc)
	var lastFailure string // the last re-subscribe error logged at warn
	for {
		if c != nil {
			lost := sub.consume(ctx, c)
			if c.ch != nil && !c.ch.IsClosed() {
				_ = c.ch.Close() // returns the messages not acked to the queue
			}
			if lost == nil {
				return
			}
			sub.logger.Warn("consuming stopped; subscribing again", "queue", c.queue, "error", lost)
			bo.Reset()
		}
		_, _, reconnected, _ := s.conn.current()
		timer := time.NewTimer(bo.NextBackOff())
		select {
		case <-timer.C:
		case <-reconnected:
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.closing:
			timer.Stop()
			return
		}
		timer.Stop()
		var err error
		if c, err = sub.open(); err != nil {
			// Until it succeeds nothing is consumed: say so at warn, with the broker's reason,
			// once per distinct reason so that a long outage does not flood the log.
			if err.Error() != lastFailure {
				lastFailure = err.Error()
				sub.logger.Warn("cannot consume after losing the subscription; retrying", "error", err)
			} else {
				sub.logger.Debug("cannot consume yet; retrying", "error", err)
			}
			c = nil
		} else {
			lastFailure = ""
			sub.logger.Info("consuming again", "queue", c.queue)
		}
	}
}

// consume hands out c's deliveries until the channel is lost (returned as an error), ctx ends
// or the subscriber closes (nil). At most MaxInFlight messages are out and not acked at once;
// each is acked or nacked on its own. After ctx ends or Close, it drains: no more deliveries
// are handed out, and those out get DrainTimeout to be settled on the still open channel, with
// their contexts alive. After a loss there is nothing to drain into: the broker has requeued
// them already.
func (sub *subscription) consume(ctx context.Context, c *consumer) error {
	s := sub.s
	d := drain{
		stopping: make(chan struct{}),
		abandon:  make(chan struct{}),
	}
	var cancelAlive context.CancelFunc
	d.alive, cancelAlive = context.WithCancel(context.WithoutCancel(ctx))
	lost := sub.handOut(ctx, c, &d)
	close(d.stopping)
	settled := make(chan struct{})
	go func() { d.handed.Wait(); close(settled) }()
	if lost == nil {
		t := time.NewTimer(s.cfg.DrainTimeout)
		select {
		case <-settled:
		case <-t.C:
			sub.logger.Warn("drain_timeout passed with messages still in handlers; the broker requeues them", "queue", c.queue, "drain_timeout", s.cfg.DrainTimeout)
		case e := <-c.closes:
			lost = channelError(e)
		}
		t.Stop()
	}
	close(d.abandon)
	cancelAlive()
	<-settled
	return lost
}

// drain is what consume shares with the goroutines settling the messages it handed out.
type drain struct {
	alive    context.Context // the base of message contexts: cancelled when the drain ends
	stopping chan struct{}   // closed when consume stops handing out messages
	abandon  chan struct{}   // closed when the drain ends: settles give up
	handed   sync.WaitGroup
}

func (sub *subscription) handOut(ctx context.Context, c *consumer, dr *drain) error {
	s := sub.s
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	// With a single active consumer, or on a stream, a requeued message would come back behind
	// those already prefetched (or, on a stream, not at all): hand it out again in place.
	inPlace := s.topo.cfg.Queue.SingleActiveConsumer || s.topo.stream()
	for {
		// Stopping wins over a ready slot or delivery (select picks among ready cases at random).
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		default:
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case e := <-c.closes:
			return channelError(e)
		}
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-c.deliveries:
			if !ok {
				return errors.New("the broker cancelled the consumer or closed the channel")
			}
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case e := <-c.closes:
			return channelError(e)
		}
		pos := driver.Position{Backend: Name, Topic: sub.topic, ConsumerGroup: s.group, Coordinates: Coordinates(c.queue, d.DeliveryTag)}
		if off, ok := d.Headers["x-stream-offset"].(int64); ok {
			pos.Coordinates = StreamCoordinates(c.queue, off)
		}
		msg, done := sub.message(dr.alive, d, pos)
		select {
		case sub.out <- msg:
		case <-ctx.Done():
			done()
			return nil
		case <-s.closing:
			done()
			return nil
		case e := <-c.closes:
			done() // not handed out; the broker requeues it with the channel
			return channelError(e)
		}
		dr.handed.Add(1)
		go func() {
			defer dr.handed.Done()
			defer func() { <-slots }()
			sub.settle(dr, d, msg, done, pos, inPlace)
		}()
	}
}

// message builds the Watermill message for d, with a context that carries its position and is
// cancelled (by done) once it is settled.
func (sub *subscription) message(ctx context.Context, d amqp.Delivery, pos driver.Position) (*message.Message, context.CancelFunc) {
	msg := unmarshal(d)
	if reason := msg.Metadata.Get(driver.HeaderInvalidReason); reason != "" {
		sub.logger.Warn("delivering a message that could not be fully decoded", "message_uuid", msg.UUID, "position", pos.Coordinates, "reason", reason)
	}
	mctx, cancel := context.WithCancel(driver.ContextWithPosition(ctx, pos))
	msg.SetContext(mctx)
	return msg, cancel
}

// settle waits for the handler's ack or nack on msg and passes it to the broker on the channel
// d came from. It gives up when the drain ends: the broker then requeues d with the channel.
// A nack while draining requeues at once, without the nack delay or a redelivery in place.
func (sub *subscription) settle(dr *drain, d amqp.Delivery, msg *message.Message, done context.CancelFunc, pos driver.Position, inPlace bool) {
	for {
		select {
		case <-msg.Acked():
			done()
			if err := d.Ack(false); err != nil {
				sub.logger.Debug("ack not delivered; the broker will redeliver the message", "message_uuid", msg.UUID, "error", err)
			}
			return
		case <-msg.Nacked():
			done()
			stopping := !sleep(sub.s.cfg.NackDelay, dr.stopping)
			if !stopping {
				select {
				case <-dr.stopping:
					stopping = true
				default:
				}
			}
			if stopping || !inPlace {
				if err := d.Nack(false, true); err != nil {
					sub.logger.Debug("nack not delivered; the broker will redeliver the message", "message_uuid", msg.UUID, "error", err)
				}
				return
			}
			redelivery := msg.Copy()
			redelivery.Metadata.Set(wamqp.MetadataRedeliveredKey, "true")
			mctx, cancel := context.WithCancel(driver.ContextWithPosition(dr.alive, pos))
			redelivery.SetContext(mctx)
			select {
			case sub.out <- redelivery:
				msg, done = redelivery, cancel
			case <-dr.stopping:
				cancel()
				if err := d.Nack(false, true); err != nil {
					sub.logger.Debug("nack not delivered; the broker will redeliver the message", "message_uuid", msg.UUID, "error", err)
				}
				return
			}
		case <-dr.abandon:
			done()
			return
		}
	}
}

func sleep(d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

func channelError(e *amqp.Error) error {
	if e == nil {
		return errors.New("channel closed")
	}
	return e
}
