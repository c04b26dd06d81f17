package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

var (
	// ErrNacked is wrapped by Publish's error for a message the broker refused (basic.nack):
	// a queue bound to the topic is full (queue.max_length_bytes or queue.max_length, with
	// queue.overflow reject-publish), or the queue could not store it. It is not retried, and
	// its class is bus.ErrUnavailable: publishing again later may succeed, once the consumers
	// caught up.
	ErrNacked = errors.New("broker refused the message (nack)")
	// ErrUnroutable is wrapped by Publish's error for a message no queue was bound to take,
	// returned by the broker because it was published mandatory. It is not retried.
	ErrUnroutable = errors.New("no queue is bound for the message (unroutable)")
	// ErrPublisherClosed is returned by Publish after Close, and wrapped by the error of a
	// Publish that Close interrupted before the broker confirmed its messages. It wraps
	// driver.ErrClosed.
	ErrPublisherClosed = fmt.Errorf("rabbitmq publisher %w", driver.ErrClosed)
)

// confirmWindow is how many messages of one Publish call may await their confirms at once;
// a larger batch waits for the oldest before sending more.
const confirmWindow = 256

// errChannelLost marks a channel that closed under a Publish; the messages not confirmed are
// sent again on a new channel.
var errChannelLost = errors.New("channel closed before the broker confirmed")

// publisher publishes on a pool of channels in confirm mode. Publish calls share the channels:
// each call pipelines its messages on one of them and waits for their confirms, so the number
// of messages in flight grows with the number of concurrent calls, not with the pool. While the
// broker is unreachable, Publish retries with backoff until its context's deadline (or
// PublisherConfig.Timeout): every message is confirmed, or Publish returns an error naming the
// first one that was not.
type publisher struct {
	conn   *Connection
	topo   topology
	cfg    PublisherConfig
	rc     ReconnectConfig
	logger *slog.Logger
	// declare lists the consumer groups whose queues are declared before the first publish to a
	// topic, with whether each is temporary.
	declare []groupQueue

	slots []*pubChannel
	next  atomic.Uint64

	declMu   sync.Mutex
	declGen  uint64
	declared map[string]bool // topics whose topology exists, for connection declGen

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

func newPublisher(conn *Connection, topo topology, cfg PublisherConfig, rc ReconnectConfig, declare []groupQueue, logger *slog.Logger) *publisher {
	p := &publisher{conn: conn, topo: topo, cfg: cfg, rc: rc, declare: declare, logger: logger}
	for range cfg.Channels {
		p.slots = append(p.slots, &pubChannel{})
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
	// Every message is checked before the first is sent, so a refused batch leaves no trace.
	for _, m := range msgs {
		if size := messageBytes(m); size > p.cfg.MaxMessageBytes {
			return fmt.Errorf("publish message %s to %s: it is %d bytes (payload and metadata), over the limit of %d (rabbitmq.publisher.max_message_bytes): %w",
				m.UUID, topic, size, p.cfg.MaxMessageBytes, driver.ErrTooLarge)
		}
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

// messageBytes is what publisher.max_message_bytes counts: the payload (the AMQP body) plus the
// metadata keys and values (the headers).
func messageBytes(msg *message.Message) int {
	n := len(msg.Payload)
	for k, v := range msg.Metadata {
		n += len(k) + len(v)
	}
	return n
}

// failure builds Publish's error: which message was not confirmed, why, and after how long.
func (p *publisher) failure(ctx context.Context, topic string, msgs []*message.Message, done, attempts int, start time.Time, err error) error {
	which := fmt.Sprintf("message %s", msgs[done].UUID)
	if len(msgs) > 1 {
		which = fmt.Sprintf("message %s (%d of %d; those before it are confirmed)", msgs[done].UUID, done+1, len(msgs))
	}
	if cause := context.Cause(ctx); cause != nil && retryable(err) {
		return classify("", fmt.Errorf("publish %s to %s on %s: not confirmed after %d attempts in %s: %w (last error: %w)",
			which, topic, p.conn.Endpoint(), attempts, time.Since(start).Round(time.Millisecond), cause, err))
	}
	return classify("", fmt.Errorf("publish %s to %s on %s: %w", which, topic, p.conn.Endpoint(), err))
}

// publishOnce publishes on one channel of the pool and returns how many messages, from the
// first, the broker confirmed.
func (p *publisher) publishOnce(ctx context.Context, topic string, msgs []*message.Message, pubs []amqp.Publishing) (int, error) {
	if err := p.prepare(topic); err != nil {
		return 0, err
	}
	oc, err := p.channel()
	if err != nil {
		return 0, err
	}
	exchange := p.topo.exchangeName(topic)
	confirmed := 0
	pending := make([]*amqp.DeferredConfirmation, 0, min(len(msgs), confirmWindow))
	for i := range msgs {
		if len(pending) == confirmWindow {
			if err := p.awaitConfirm(ctx, oc, topic, exchange, msgs[confirmed].UUID, pending[0]); err != nil {
				return confirmed, err
			}
			pending = pending[1:]
			confirmed++
		}
		dc, err := oc.ch.PublishWithDeferredConfirm(exchange, topic, p.cfg.Mandatory, false, pubs[i])
		if err != nil {
			oc.close()
			return confirmed, fmt.Errorf("send: %w", err)
		}
		if !p.cfg.Confirms {
			confirmed++
			continue
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		if err := p.awaitConfirm(ctx, oc, topic, exchange, msgs[confirmed].UUID, dc); err != nil {
			return confirmed, err
		}
		confirmed++
	}
	return confirmed, nil
}

// awaitConfirm waits for the confirm of message id and checks that the broker did not return it.
// Its errors are about that message; Publish names it.
func (p *publisher) awaitConfirm(ctx context.Context, oc *openChannel, topic, exchange, id string, dc *amqp.DeferredConfirmation) error {
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("waiting for the broker's confirm: %w", context.Cause(ctx))
	}
	if !dc.Acked() {
		// amqp091 nacks every pending confirm when the channel closes: tell that from a
		// broker's nack.
		if oc.ch.IsClosed() {
			return errChannelLost
		}
		return fmt.Errorf("%w: a queue bound to topic %s is full (rabbitmq.queue.max_length_bytes or max_length, overflow reject-publish: its consumer group is behind or gone) or could not store it",
			ErrNacked, topic)
	}
	if !p.cfg.Mandatory {
		return nil
	}
	if r, ok := oc.takeReturn(topic, id); ok {
		return fmt.Errorf("%w: no queue is bound to topic %s (exchange %s, routing key %s: %d %s), so no consumer group would get it; list the groups that read %s in rabbitmq.publisher.declare_groups so their queues keep messages from the first publish, or subscribe them first",
			ErrUnroutable, topic, exchange, topic, r.ReplyCode, r.ReplyText, topic)
	}
	return nil
}

// channel returns a live channel of the pool, round robin, opening it on the current
// connection when it is new, closed or from an older connection.
func (p *publisher) channel() (*openChannel, error) {
	slot := p.slots[p.next.Add(1)%uint64(len(p.slots))]
	slot.mu.Lock()
	defer slot.mu.Unlock()
	conn, gen, _, err := p.conn.current()
	if err != nil {
		return nil, err
	}
	if oc := slot.open; oc != nil && !oc.ch.IsClosed() && oc.gen == gen {
		return oc, nil
	}
	if slot.open != nil {
		slot.open.close()
		slot.open = nil
	}
	ch, err := p.conn.openChannel(conn)
	if err != nil {
		return nil, err
	}
	if p.cfg.Confirms {
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("put channel in confirm mode: %w", err)
		}
	}
	slot.open = newOpenChannel(ch, gen, p.cfg.Mandatory)
	return slot.open, nil
}

// prepare declares topic's exchange and the declared groups' queues once per connection, on a
// channel of its own so that a refused declaration cannot close a publishing channel.
func (p *publisher) prepare(topic string) error {
	conn, gen, _, err := p.conn.current()
	if err != nil {
		return err
	}
	p.declMu.Lock()
	defer p.declMu.Unlock()
	if p.declGen != gen {
		p.declGen, p.declared = gen, map[string]bool{}
	}
	if p.declared[topic] {
		return nil
	}
	ch, err := p.conn.openChannel(conn)
	if err != nil {
		return err
	}
	defer func() {
		if !ch.IsClosed() {
			_ = ch.Close()
		}
	}()
	if err := p.declareFor(ch, topic); err != nil {
		return err
	}
	p.declared[topic] = true
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
	for _, slot := range p.slots {
		slot.mu.Lock()
		if slot.open != nil {
			slot.open.close()
			slot.open = nil
		}
		slot.mu.Unlock()
	}
	p.topo.deleteTemporary(p.conn, p.logger)
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
