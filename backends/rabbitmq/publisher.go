package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	// ErrNacked is wrapped by Publish's error for a message the broker refused (basic.nack):
	// a queue full with x-overflow reject-publish, say. It is not retried.
	ErrNacked = errors.New("broker refused the message (nack)")
	// ErrUnroutable is wrapped by Publish's error for a message no queue was bound to take,
	// returned by the broker because it was published mandatory. It is not retried.
	ErrUnroutable = errors.New("no queue is bound for the message (unroutable)")
	// ErrPublisherClosed is returned by Publish after Close, and wrapped by the error of a
	// Publish that Close interrupted before the broker confirmed its messages.
	ErrPublisherClosed = errors.New("rabbitmq publisher closed")
)

// confirmWindow is how many messages one Publish call sends before waiting for their confirms.
// It bounds the returns that can be pending on a channel, which the returns buffer must hold:
// amqp091 drops a return it cannot hand over within 5 seconds.
const confirmWindow = 256

// errChannelLost marks a channel that closed under a Publish; the messages not confirmed are
// sent again on a new channel.
var errChannelLost = errors.New("channel closed before the broker confirmed")

// publisher publishes on a pool of channels in confirm mode. Each Publish call takes one
// channel for its duration, so calls run concurrently up to the pool's size and the broker's
// returns on a channel belong to the call holding it. While the broker is unreachable, Publish
// retries with backoff until its context's deadline (or PublisherConfig.Timeout): messages are
// confirmed, or Publish returns an error naming the first one that was not.
type publisher struct {
	conn   *Connection
	topo   topology
	cfg    PublisherConfig
	rc     ReconnectConfig
	logger *slog.Logger
	// declare lists the consumer groups whose queues are declared before the first publish to a
	// topic, with whether each is temporary.
	declare []groupQueue

	slots chan *pubChannel

	mu       sync.RWMutex // guards closed against Publish calls starting
	closed   bool
	inflight sync.WaitGroup
	stop     context.Context // cancelled by Close: interrupts waiting Publish calls
	cancel   context.CancelFunc
}

type groupQueue struct {
	group     string
	temporary bool
}

// pubChannel is one slot of the pool: a channel (nil until first use or after it was lost),
// its returns, the connection generation it was opened on, and what has been declared on
// that connection.
type pubChannel struct {
	ch       *amqp.Channel
	returns  chan amqp.Return
	gen      uint64
	declared map[string]bool
}

func newPublisher(conn *Connection, topo topology, cfg PublisherConfig, rc ReconnectConfig, declare []groupQueue, logger *slog.Logger) *publisher {
	p := &publisher{conn: conn, topo: topo, cfg: cfg, rc: rc, declare: declare, logger: logger,
		slots: make(chan *pubChannel, cfg.Channels)}
	for range cfg.Channels {
		p.slots <- &pubChannel{}
	}
	p.stop, p.cancel = context.WithCancel(context.Background())
	return p
}

// Publish sends msgs to topic, in order, and returns once the broker confirmed every one of
// them (with confirms on). The first message's context bounds the whole call; when it has no
// deadline, PublisherConfig.Timeout does. It is safe for concurrent use.
//
// A message is sent again after a connection or channel failure that left it unconfirmed, so
// the broker may hold it twice: delivery is at-least-once.
func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return ErrPublisherClosed
	}
	p.inflight.Add(1)
	p.mu.RUnlock()
	defer p.inflight.Done()

	if err := p.topo.checkTopic(topic); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx := msgs[0].Context()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, p.cfg.Timeout, fmt.Errorf("publisher.timeout %s elapsed: %w", p.cfg.Timeout, context.DeadlineExceeded))
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(p.stop, func() { cancel(ErrPublisherClosed) })()

	pubs := make([]amqp.Publishing, len(msgs))
	for i, m := range msgs {
		pubs[i] = marshal(m, p.cfg.Persistent)
	}

	start := time.Now()
	bo := newBackoff(p.rc)
	done := 0
	for attempt := 1; ; attempt++ {
		n, err := p.publishOnce(ctx, topic, msgs[done:], pubs[done:])
		done += n
		if err == nil {
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return p.failure(ctx, topic, msgs, done, attempt, start, err)
		}
		wait := bo.NextBackOff()
		p.logger.Debug("publish failed; retrying", "topic", topic, "message_uuid", msgs[done].UUID, "attempt", attempt, "retry_in", wait, "error", err)
		_, _, reconnected, _ := p.conn.current()
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-reconnected: // nil, so never ready, while a connection is up
		case <-ctx.Done():
			timer.Stop()
			return p.failure(ctx, topic, msgs, done, attempt, start, err)
		}
		timer.Stop()
	}
}

// failure builds Publish's error: which message was not confirmed, why, and after how long.
func (p *publisher) failure(ctx context.Context, topic string, msgs []*message.Message, done, attempts int, start time.Time, err error) error {
	which := fmt.Sprintf("message %s", msgs[done].UUID)
	if len(msgs) > 1 {
		which = fmt.Sprintf("message %s (%d of %d; those before it are confirmed)", msgs[done].UUID, done+1, len(msgs))
	}
	if cause := context.Cause(ctx); cause != nil && retryable(err) {
		return fmt.Errorf("publish %s to %s on %s: not confirmed after %d attempts in %s: %w (last error: %w)",
			which, topic, p.conn.Endpoint(), attempts, time.Since(start).Round(time.Millisecond), cause, err)
	}
	return fmt.Errorf("publish %s to %s on %s: %w", which, topic, p.conn.Endpoint(), err)
}

// publishOnce publishes on one channel of the pool and returns how many messages, from the
// first, the broker confirmed.
func (p *publisher) publishOnce(ctx context.Context, topic string, msgs []*message.Message, pubs []amqp.Publishing) (int, error) {
	var pc *pubChannel
	select {
	case pc = <-p.slots:
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for a free publishing channel: %w", context.Cause(ctx))
	}
	defer func() { p.slots <- pc }()

	if err := p.prepare(pc, topic); err != nil {
		return 0, err
	}
	exchange := p.topo.exchangeName(topic)
	confirmed := 0
	for confirmed < len(msgs) {
		end := min(confirmed+confirmWindow, len(msgs))
		dcs := make([]*amqp.DeferredConfirmation, 0, end-confirmed)
		for i := confirmed; i < end; i++ {
			dc, err := pc.ch.PublishWithDeferredConfirm(exchange, topic, p.cfg.Mandatory, false, pubs[i])
			if err != nil {
				p.discard(pc)
				// Messages sent before it in this window are not known to be confirmed.
				return confirmed, fmt.Errorf("send message %s: %w", msgs[i].UUID, err)
			}
			dcs = append(dcs, dc)
		}
		if !p.cfg.Confirms {
			confirmed = end
			continue
		}
		returned := map[string]amqp.Return{}
		for _, dc := range dcs {
			id := msgs[confirmed].UUID
			if err := p.awaitConfirm(ctx, pc, dc, returned); err != nil {
				return confirmed, fmt.Errorf("message %s: %w", id, err)
			}
			// The broker sends a message's return before its ack, so by now it is in hand.
			drainReturns(pc, returned)
			if r, ok := returned[id]; ok {
				return confirmed, fmt.Errorf("message %s: %w: exchange %s has no binding for routing key %s (%d %s); a consumer group must subscribe once, or be listed in publisher.declare_groups, before messages for it are kept",
					id, ErrUnroutable, exchange, topic, r.ReplyCode, r.ReplyText)
			}
			confirmed++
		}
	}
	return confirmed, nil
}

// awaitConfirm waits for one confirm, collecting returns meanwhile.
func (p *publisher) awaitConfirm(ctx context.Context, pc *pubChannel, dc *amqp.DeferredConfirmation, returned map[string]amqp.Return) error {
	for {
		select {
		case <-dc.Done():
			if dc.Acked() {
				return nil
			}
			// amqp091 nacks every pending confirm when the channel closes: tell that from a
			// broker's nack.
			if pc.ch.IsClosed() {
				p.discard(pc)
				return errChannelLost
			}
			return ErrNacked
		case r, ok := <-pc.returns:
			if ok {
				returned[r.MessageId] = r
			} else {
				pc.returns = nil
			}
		case <-ctx.Done():
			// A later confirm or return on this channel would be taken for another call's.
			p.discard(pc)
			return fmt.Errorf("waiting for the broker's confirm: %w", context.Cause(ctx))
		}
	}
}

func drainReturns(pc *pubChannel, returned map[string]amqp.Return) {
	for {
		select {
		case r, ok := <-pc.returns:
			if !ok {
				pc.returns = nil
				return
			}
			returned[r.MessageId] = r
		default:
			return
		}
	}
}

// prepare makes sure pc has an open channel on the current connection, and that topic's
// exchange and the declared groups' queues exist.
func (p *publisher) prepare(pc *pubChannel, topic string) error {
	conn, gen, _, err := p.conn.current()
	if err != nil {
		return err
	}
	if pc.ch != nil && (pc.ch.IsClosed() || pc.gen != gen) {
		p.discard(pc)
	}
	if pc.ch == nil {
		ch, err := p.conn.openChannel(conn)
		if err != nil {
			return err
		}
		if p.cfg.Confirms {
			if err := ch.Confirm(false); err != nil {
				_ = ch.Close()
				return fmt.Errorf("put channel in confirm mode: %w", err)
			}
			pc.returns = ch.NotifyReturn(make(chan amqp.Return, 2*confirmWindow))
		}
		pc.ch, pc.gen, pc.declared = ch, gen, map[string]bool{}
	}
	if pc.declared[topic] {
		return nil
	}
	if err := p.declareFor(pc.ch, topic); err != nil {
		p.discard(pc)
		return err
	}
	pc.declared[topic] = true
	return nil
}

func (p *publisher) declareFor(ch *amqp.Channel, topic string) error {
	if p.topo.stream() {
		// The topic's stream keeps the history every group reads: declare it from the first
		// message on.
		_, err := p.topo.declareQueue(ch, topic, "", false)
		return err
	}
	if len(p.declare) == 0 {
		return p.topo.declareExchange(ch, topic)
	}
	for _, g := range p.declare {
		if _, err := p.topo.declareQueue(ch, topic, g.group, g.temporary); err != nil {
			return fmt.Errorf("declare the queue of consumer group %s: %w", g.group, err)
		}
	}
	return nil
}

// discard closes pc's channel so that the next call opens a fresh one.
func (p *publisher) discard(pc *pubChannel) {
	if pc.ch == nil {
		return
	}
	if !pc.ch.IsClosed() {
		_ = pc.ch.Close()
	}
	pc.ch, pc.returns, pc.declared = nil, nil, nil
}

// Close interrupts Publish calls still waiting (they fail with ErrPublisherClosed), waits for
// them to return, and closes the channels and the publishing connection.
func (p *publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.inflight.Wait()
	for range cap(p.slots) {
		p.discard(<-p.slots)
	}
	return p.conn.Close()
}

// retryable reports whether err may go away on another connection or channel: the broker
// unreachable or restarting, a channel lost. Refusals that will not change (access refused,
// arguments that do not match, a nack, an unroutable message) are not.
func retryable(err error) bool {
	switch {
	case errors.Is(err, ErrNacked), errors.Is(err, ErrUnroutable), errors.Is(err, ErrInvalidTopic), errors.Is(err, ErrPublisherClosed):
		return false
	case errors.Is(err, ErrNotConnected), errors.Is(err, errChannelLost), errors.Is(err, amqp.ErrClosed):
		return true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.PreconditionFailed, amqp.NotAllowed, amqp.SyntaxError,
			amqp.CommandInvalid, amqp.NotImplemented, amqp.ContentTooLarge, amqp.FrameError:
			return false
		}
		return true // 320 connection-forced on shutdown, 404 after a deletion, 541 internal error, ...
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
