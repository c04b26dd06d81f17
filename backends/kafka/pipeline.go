package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// pipelineSubscriber is the consumer-group subscriber for parallel handling, selected by
// kafka.consumer.max_in_flight > 0. Watermill's Kafka subscriber hands out a partition's next
// record only after the previous one is acked, so handlers cannot overlap without giving up
// at-least-once (Watermill #374). This one follows Confluent's Parallel Consumer instead:
//
//   - Records are handed out in offset order per partition, without waiting for acks, while
//     fewer than window records of the partition lie beyond its committable offset.
//   - Each record is acked on its own. A partition's offset is marked (and committed every
//     commit_interval, and on every session end) only up to the first record not yet acked: the
//     contiguous prefix. A crash therefore re-delivers at most the window plus what was marked
//     since the last commit, never skips a record.
//   - A nacked record is handed out again after nack_delay, possibly after later records
//     of its partition; keeping a key's order across a nack is the ordering middleware's job.
//   - When the subscriber closes or a rebalance takes a partition away, it stops handing out
//     that partition's records, waits up to drain_timeout for those already out to be acked
//     (so their offsets are committed), then cancels their contexts. A record acked after that
//     is not committed here, and its partition's next owner handles it again.
//
// Each message's context carries its driver.Position (topic, group, partition, offset).
type pipelineSubscriber struct {
	brokers        []string
	sc             *sarama.Config
	group          string
	window         int
	nackDelay      time.Duration
	reconnectDelay time.Duration
	drainTimeout   time.Duration
	logger         *slog.Logger

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	subs    sync.WaitGroup
}

func newPipelineSubscriber(cfg *Config, sc *sarama.Config, logger *slog.Logger) *pipelineSubscriber {
	return &pipelineSubscriber{
		brokers:        cfg.Brokers,
		sc:             sc,
		group:          cfg.ConsumerGroup,
		window:         cfg.Consumer.MaxInFlight,
		nackDelay:      cfg.Consumer.NackDelay,
		reconnectDelay: cfg.Consumer.ReconnectDelay,
		drainTimeout:   cfg.Consumer.DrainTimeout,
		logger:         logger,
		closing:        make(chan struct{}),
	}
}

// Subscribe joins the consumer group for topic and returns the channel its records arrive on.
// The channel is closed after ctx is cancelled or Close is called, once the records already
// handed out are drained.
func (s *pipelineSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, errSubscriberClosed)
	}
	s.subs.Add(1)
	s.mu.Unlock()

	client, err := sarama.NewClient(s.brokers, s.sc)
	if err != nil {
		s.subs.Done()
		return nil, classify(fmt.Sprintf("subscribe to %s: connect to %v", topic, s.brokers), err)
	}
	group, err := sarama.NewConsumerGroupFromClient(s.group, client)
	if err != nil {
		s.subs.Done()
		return nil, errors.Join(classify(fmt.Sprintf("subscribe to %s: join consumer group %s", topic, s.group), err), client.Close())
	}
	sub := &subscription{
		s:      s,
		topic:  topic,
		out:    make(chan *message.Message),
		logger: s.logger.With("topic", topic, "consumer_group", s.group),
	}
	go sub.run(ctx, client, group)
	return sub.out, nil
}

// Close ends every subscription, draining records already handed out for up to drain_timeout,
// and returns when they have ended. It is safe to call more than once.
func (s *pipelineSubscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.subs.Wait()
	return nil
}

// subscription is one Subscribe call: a consumer group member for one topic.
type subscription struct {
	s      *pipelineSubscriber
	topic  string
	out    chan *message.Message
	logger *slog.Logger
}

// run owns the group session loop; it closes out when it ends.
func (sub *subscription) run(ctx context.Context, client sarama.Client, group sarama.ConsumerGroup) {
	defer sub.s.subs.Done()
	defer close(sub.out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends with run, through the deferred cancel
		select {
		case <-sub.s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range group.Errors() {
			sub.logger.Warn("kafka consumer group error", "err", err)
		}
	}()

	h := &claimHandler{sub: sub}
	for ctx.Err() == nil {
		err := group.Consume(ctx, []string{sub.topic}, h)
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			break
		}
		if err != nil && ctx.Err() == nil {
			sub.logger.Warn("kafka consumer group session ended; rejoining", "err", err, "retry_in", sub.s.reconnectDelay)
			t := time.NewTimer(sub.s.reconnectDelay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	if err := group.Close(); err != nil {
		sub.logger.Warn("close kafka consumer group", "err", err)
	}
	<-errsDone
	if err := client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		sub.logger.Warn("close kafka client", "err", err)
	}
}

// claimHandler is the sarama.ConsumerGroupHandler of a subscription.
type claimHandler struct{ sub *subscription }

func (h *claimHandler) Setup(sarama.ConsumerGroupSession) error { return nil }

// Cleanup commits what the claims marked while they drained, before the session's offsets
// are released.
func (h *claimHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

// ConsumeClaim hands out one partition's records in offset order and commits the contiguous
// prefix of acked ones.
func (h *claimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	s := h.sub.s
	// Records stop being handed out when the session ends (rebalance, Close, cancelled
	// Subscribe context); the handlers' contexts live on until the drain is over.
	handOut := sess.Context()
	msgCtx, cancelMsgs := context.WithCancel(context.Background())
	w := newPartitionWindow(s.window)
	pos := driver.Position{Backend: Name, Topic: claim.Topic(), ConsumerGroup: s.group}
	var watchers sync.WaitGroup
	defer func() {
		w.drain(s.drainTimeout)
		cancelMsgs()
		watchers.Wait()
	}()

	for {
		var rec *sarama.ConsumerMessage
		select {
		case r, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			rec = r
		case <-handOut.Done():
			return nil
		}
		if !w.acquire(handOut) {
			return nil
		}
		msg := toMessage(rec)
		pos.Coordinates = Coordinates(rec.Partition, rec.Offset)
		msg.SetContext(driver.ContextWithBrokerTime(driver.ContextWithPosition(msgCtx, pos), rec.Timestamp))
		e := w.add(rec.Offset)
		select {
		case h.sub.out <- msg:
		case <-handOut.Done():
			w.abandon(e)
			return nil
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			h.watch(sess, claim, w, e, msg, handOut, msgCtx)
		}()
	}
}

// watch waits for one handed-out record's ack, marks the partition's committable offset, and
// hands the record out again after a nack.
func (h *claimHandler) watch(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, w *partitionWindow, e *windowEntry, msg *message.Message, handOut, msgCtx context.Context) {
	for {
		select {
		case <-msg.Acked():
			w.ack(e, func(next int64) { sess.MarkOffset(claim.Topic(), claim.Partition(), next, "") })
			return
		case <-msg.Nacked():
			t := time.NewTimer(h.sub.s.nackDelay)
			select {
			case <-handOut.Done():
				t.Stop()
				w.abandon(e)
				return
			case <-t.C:
			}
			msg = msg.CopyWithContext()
			select {
			case h.sub.out <- msg:
			case <-handOut.Done():
				w.abandon(e)
				return
			}
		case <-msgCtx.Done():
			return
		}
	}
}

// toMessage unmarshals a record. The marshaler accepts every record; should that change, a
// record it rejects is still delivered, marked with driver.HeaderInvalidReason, so the poison
// queue takes it instead of the partition stalling on it.
func toMessage(rec *sarama.ConsumerMessage) *message.Message {
	msg, err := marshaler{}.Unmarshal(rec)
	if err != nil {
		msg = message.NewMessage(fmt.Sprintf("kafka:%s/%d/%d", rec.Topic, rec.Partition, rec.Offset), rec.Value)
		if len(rec.Key) > 0 {
			msg.Metadata.Set(driver.HeaderKey, string(rec.Key))
		}
		msg.Metadata.Set(driver.HeaderInvalidReason, err.Error())
	}
	return msg
}

// partitionWindow tracks one claimed partition's records from its committable offset on.
type partitionWindow struct {
	slots chan struct{} // one per record held beyond the committable offset

	mu      sync.Mutex
	queue   []*windowEntry // handed-out records in offset order, from the first not acked
	pending int            // handed out, neither acked nor abandoned
	wake    chan struct{}  // signalled when pending drops
}

type windowEntry struct {
	offset int64
	acked  bool
}

func newPartitionWindow(size int) *partitionWindow {
	return &partitionWindow{slots: make(chan struct{}, size), wake: make(chan struct{}, 1)}
}

// acquire waits for room in the window; false when ctx ends first.
func (w *partitionWindow) acquire(ctx context.Context) bool {
	select {
	case w.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *partitionWindow) add(offset int64) *windowEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := &windowEntry{offset: offset}
	w.queue = append(w.queue, e)
	w.pending++
	return e
}

// ack records e as done and, when that extends the contiguous acked prefix, calls mark with the
// offset to commit (the next one to read) and frees the prefix's slots.
func (w *partitionWindow) ack(e *windowEntry, mark func(next int64)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e.acked = true
	w.pending--
	n := 0
	for n < len(w.queue) && w.queue[n].acked {
		n++
	}
	if n > 0 {
		mark(w.queue[n-1].offset + 1)
		clear(w.queue[:n])
		w.queue = w.queue[n:]
		for range n {
			<-w.slots
		}
	}
	w.signal()
}

// abandon records that e will not be acked in this session; its offset is never committed
// here, so the partition's next owner reads it again.
func (w *partitionWindow) abandon(*windowEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending--
	w.signal()
}

func (w *partitionWindow) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// drain waits up to timeout for every handed-out record to be acked or abandoned.
func (w *partitionWindow) drain(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		pending := w.pending
		w.mu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case <-w.wake:
		case <-t.C:
			return
		}
	}
}
