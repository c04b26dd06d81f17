package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// entry is one stream entry read or claimed by a subscription, until it is acked.
type entry struct {
	id     string
	values map[string]any   // the entry's fields, until the deliverer decodes them
	msg    *message.Message // nil until decoded
	base   context.Context  // the message's context before it is handed out: subscription and position
}

// subscription is one Subscribe call: a reader (XREADGROUP), a maintainer (claims, lease
// renewal, lag observation, consumer clean-up), a deliverer that hands messages out one window
// slot at a time, and an acker that XACKs in batches. run owns all of them.
type subscription struct {
	s        *Subscriber
	cfg      *Config
	stream   string
	group    string
	consumer string
	log      *slog.Logger

	out     chan *message.Message
	raw     chan []entry  // reader and claimer to decoder
	batches chan []entry  // decoder to deliverer
	retry   chan entry    // nacked entries back to the deliverer
	window  chan struct{} // one token per message handed out and not yet acked or nacked
	acks    chan string   // acked entry ids to the acker

	held    heldSet
	stopped context.Context // done once the subscription stops handing out messages
	alive   context.Context // the base of messages' contexts: done DrainTimeout after stopped
	// ownRead is closed once the reader has read this consumer's own pending entries (from id
	// 0). Claims wait for it: XAUTOCLAIM also returns this consumer's own idle entries, and a
	// claim running while they are read would hand the same ids out twice.
	ownRead     chan struct{}
	ownReadOnce sync.Once

	lagMu       sync.Mutex
	lag         int64
	lagKnown    bool
	lagObserved time.Time
}

func newSubscription(s *Subscriber, stream, consumer string) *subscription {
	cfg := &s.cfg
	return &subscription{
		s:        s,
		cfg:      cfg,
		stream:   stream,
		group:    s.group,
		consumer: consumer,
		log:      s.logger.With("stream", stream, "group", s.group, "consumer", consumer),
		out:      make(chan *message.Message),
		raw:      make(chan []entry, 1),
		batches:  make(chan []entry, 1),
		retry:    make(chan entry, cfg.Consumer.MaxInFlight),
		window:   make(chan struct{}, cfg.Consumer.MaxInFlight),
		acks:     make(chan string, ackQueue),
		held:     heldSet{since: map[string]time.Time{}},
		ownRead:  make(chan struct{}),
	}
}

// ownPendingRead marks the end of the read of this consumer's own pending entries.
func (sub *subscription) ownPendingRead() {
	sub.ownReadOnce.Do(func() { close(sub.ownRead) })
}

// run drives the subscription until parent is cancelled or the subscriber closes, then drains:
// no more entries are read or handed out, messages already out get DrainTimeout to be acked,
// with their contexts alive until then, the acks are flushed, and the entries read ahead but
// not acked are released to the group (see release).
func (sub *subscription) run(parent context.Context) {
	ctx, stop := context.WithCancel(parent)
	defer stop()
	sub.stopped = ctx
	go func() {
		select {
		case <-sub.s.closing:
			stop()
		case <-ctx.Done():
		}
	}()
	sub.log.Debug("redis subscription started")

	// drain, the base of every message's context, is cancelled DrainTimeout after ctx: messages
	// handed out get that long to be acked, and their handlers keep a live context meanwhile.
	drain, cancelDrain := context.WithCancel(context.WithoutCancel(parent))
	defer cancelDrain()
	sub.alive = drain
	go func() {
		<-ctx.Done()
		t := time.NewTimer(sub.cfg.Consumer.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelDrain()
		case <-drain.Done():
		}
	}()

	var workers sync.WaitGroup
	workers.Add(3)
	go func() { defer workers.Done(); sub.read(ctx) }()
	go func() { defer workers.Done(); sub.maintain(ctx) }()
	go func() { defer workers.Done(); sub.decodeLoop(ctx) }()

	ackerDone := make(chan struct{})
	go func() { defer close(ackerDone); sub.ackLoop() }()

	var watchers sync.WaitGroup
	sub.deliver(ctx, drain, &watchers)
	close(sub.out)
	watchers.Wait()
	close(sub.acks)
	<-ackerDone
	workers.Wait()
	sub.release()
	sub.log.Debug("redis subscription ended")
}

// release makes the entries this subscription read and did not ack (read ahead and never
// handed out, nacked, or still in a handler after DrainTimeout) claimable by the group's other
// consumers at once: XCLAIM to itself with IDLE set to MinIdle (JUSTID, so their delivery
// counts do not grow). Without it they would sit in this consumer's pending list, unrenewed,
// for a full MinIdle before another consumer's claim took them: a latency spike on every
// deploy. Redis has no way to give an entry back to the group unread; an entry idle for
// MinIdle is what every consumer's next claim (every ClaimInterval) takes, and this consumer
// name, when it starts again, reads its own pending entries first.
func (sub *subscription) release() {
	ids := sub.held.all()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sub.cfg.WriteTimeout+sub.cfg.ReadTimeout)
	defer cancel()
	for len(ids) > 0 {
		n := min(len(ids), ackQueue)
		args := []any{"XCLAIM", sub.stream, sub.group, sub.consumer, 0}
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		args = append(args, "IDLE", sub.cfg.Consumer.MinIdle.Milliseconds(), "JUSTID")
		err := sub.s.client.Do(ctx, args...).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			sub.log.Warn("redis: cannot release unhandled entries to the group; they are claimed after min_idle",
				"entries", len(ids), "err", err)
			return
		}
		sub.s.n.released.Add(uint64(n))
		ids = ids[n:]
	}
	sub.log.Debug("redis: released unhandled entries to the group")
}

// deliver is the only sender on out. It hands out nacked messages again first (each keeps the
// window slot it had), then entries in stream order, each once a window slot is free.
func (sub *subscription) deliver(ctx, drain context.Context, watchers *sync.WaitGroup) {
	var cur []entry
	for {
		var e entry
		select {
		case e = <-sub.retry:
		case <-ctx.Done():
			return
		default:
			if len(cur) == 0 {
				select {
				case e = <-sub.retry:
				case cur = <-sub.batches:
				case <-ctx.Done():
					return
				}
			}
			if e.id == "" {
				select {
				case sub.window <- struct{}{}:
					e, cur = cur[0], cur[1:]
				case e = <-sub.retry:
				case <-ctx.Done():
					return
				}
			}
		}
		if e.msg == nil {
			sub.decode(&e) // here rather than in the reader, so that it overlaps the next read
		}
		// Each handing out gets a context of its own, cancelled once the handler's verdict is in,
		// as Watermill's subscribers do.
		mctx, cancel := context.WithCancel(e.base)
		e.msg.SetContext(mctx)
		select {
		case sub.out <- e.msg:
			sub.s.n.delivered.Add(1)
		case <-ctx.Done():
			cancel()
			return // the entry stays pending on this consumer and is read again later
		}
		if sub.cfg.Consumer.MaxInFlight == 1 {
			// One message out at a time: wait for its verdict here rather than in a goroutine
			// of its own, which saves a hand-off per message.
			select {
			case <-e.msg.Acked():
			case <-e.msg.Nacked():
			case <-ctx.Done():
			}
			if ctx.Err() == nil {
				sub.watch(ctx, drain, e) // the verdict is in: returns at once (or after the nack delay)
				cancel()
				continue
			}
			// Stopping: out closes now; the verdict may still come, within DrainTimeout.
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				defer cancel()
				sub.watch(ctx, drain, e)
			}()
			return
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			defer cancel()
			sub.watch(ctx, drain, e)
		}()
	}
}

// watch waits for the handler's verdict on one message and frees its window slot.
func (sub *subscription) watch(ctx, drain context.Context, e entry) {
	select {
	case <-e.msg.Acked():
		sub.acks <- e.id
		<-sub.window
	case <-e.msg.Nacked():
		sub.s.n.nacked.Add(1)
		if sub.cfg.Consumer.NackDelay > 0 {
			t := time.NewTimer(sub.cfg.Consumer.NackDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			<-sub.window // stopping: leave it pending, to be read again later
			return
		}
		sub.retry <- entry{id: e.id, msg: e.msg.Copy(), base: e.base} // the slot stays taken until the copy's verdict
	case <-drain.Done():
		<-sub.window
	}
}

// ackQueue is how many acked ids may wait for the acker, and the most one XACK carries.
const ackQueue = 1024

// ackLoop XACKs acked ids until acks is closed, then flushes what is left. It gathers ids for
// up to 1ms (or ackQueue ids) before each XACK: acks are not urgent (an entry acked late is at
// worst delivered again after a crash), and every XACK call costs the single-threaded server.
func (sub *subscription) ackLoop() {
	const (
		maxBatch = ackQueue
		linger   = time.Millisecond
	)
	ids := make([]string, 0, maxBatch)
	timer := time.NewTimer(linger)
	timer.Stop()
	for first := range sub.acks {
		ids = append(ids[:0], first)
		timer.Reset(linger)
	gather:
		for len(ids) < maxBatch {
			select {
			case id, ok := <-sub.acks:
				if !ok {
					break gather
				}
				ids = append(ids, id)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		sub.xack(ids)
	}
}

// xack acks ids in Redis, retrying while Redis is unreachable: forever while the subscription
// runs (the window fills up and reading pauses meanwhile), for DrainTimeout once it stops.
func (sub *subscription) xack(ids []string) {
	var deadline time.Time
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), sub.cfg.WriteTimeout+sub.cfg.ReadTimeout)
		err := sub.s.client.XAck(ctx, sub.stream, sub.group, ids...).Err()
		cancel()
		if err == nil || isNoGroup(err) {
			// NOGROUP: the group vanished with its pending entries; the reader reports the loss.
			if err == nil {
				sub.s.n.acked.Add(uint64(len(ids)))
			}
			sub.held.remove(ids)
			return
		}
		sub.s.n.ackErrors.Add(1)
		if sub.stopped.Err() != nil {
			if deadline.IsZero() {
				deadline = time.Now().Add(sub.cfg.Consumer.DrainTimeout)
			}
			if time.Now().After(deadline) {
				sub.log.Error("redis: giving up acking entries on close; they stay pending and will be delivered again",
					"entries", len(ids), "first_id", ids[0], "err", err)
				return
			}
		}
		sub.log.Warn("redis: XACK failed, retrying", "entries", len(ids), "err", err)
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// read feeds batches: first this consumer's own pending entries (left by an earlier run under
// the same name), then new entries.
func (sub *subscription) read(ctx context.Context) {
	defer sub.ownPendingRead()
	cursor := "0" // reading own pending entries until one read returns none; then ">"
	backoff := newBackoff()
	for ctx.Err() == nil {
		args := &redis.XReadGroupArgs{
			Group:    sub.group,
			Consumer: sub.consumer,
			Streams:  []string{sub.stream, cursor},
			Count:    int64(sub.cfg.Consumer.ReadBatch),
			Block:    -1,
		}
		if cursor == ">" {
			args.Block = sub.cfg.Consumer.BlockTime
		}
		res, err := sub.s.client.XReadGroup(ctx, args).Result()
		switch {
		case errors.Is(err, redis.Nil):
			backoff.reset()
			continue
		case err != nil && ctx.Err() != nil:
			return
		case isNoGroup(err):
			sub.recoverGroup(ctx)
			cursor = ">"
			sub.ownPendingRead()
			continue
		case err != nil:
			sub.log.Warn("redis: XREADGROUP failed, retrying", "err", err, "retry_in", backoff.peek())
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		var msgs []redis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if cursor != ">" {
			if len(msgs) == 0 {
				cursor = ">"
				sub.ownPendingRead()
				continue
			}
			cursor = msgs[len(msgs)-1].ID
		}
		sub.s.n.read.Add(uint64(len(msgs)))
		if cursor == ">" {
			sub.readSinceLag(len(msgs))
		}
		if cursor == ">" && len(msgs) > 0 && sub.lagAge() > 50*time.Millisecond {
			// Under load the lag changes fast; keep the figure a data loss would report fresh.
			sub.observeLag(ctx)
		}
		batch, gone := sub.entries(msgs)
		if len(gone) > 0 {
			sub.reportGone(gone)
		}
		if len(batch) == 0 {
			continue
		}
		select {
		case sub.raw <- batch:
		case <-ctx.Done():
			return
		}
	}
}

// decodeLoop decodes batches between the reader and the deliverer, so that decoding overlaps
// both reading the next batch and handing out the previous one.
func (sub *subscription) decodeLoop(ctx context.Context) {
	for {
		select {
		case batch := <-sub.raw:
			for i := range batch {
				sub.decode(&batch[i])
			}
			select {
			case sub.batches <- batch:
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// entries turns stream entries into the entries of a batch, to be decoded when handed out.
// Entries whose content is gone (an id left in the pending list after the entry was trimmed)
// are returned in gone. Entries this subscription already holds (read or claimed, not acked
// yet) are left out: one delivery per entry per subscription.
func (sub *subscription) entries(msgs []redis.XMessage) (batch []entry, gone []string) {
	batch = make([]entry, 0, len(msgs))
	for _, xm := range msgs {
		if xm.Values == nil {
			gone = append(gone, xm.ID)
			continue
		}
		if !sub.held.addNew(xm.ID) {
			continue
		}
		batch = append(batch, entry{id: xm.ID, values: xm.Values})
	}
	return batch, gone
}

// decode builds e's message, with the entry's position on its context. An entry that is not a
// valid event is delivered anyway, marked, and logged.
func (sub *subscription) decode(e *entry) {
	msg, reason := decodeEntry(sub.stream, e.id, e.values)
	if reason != "" {
		sub.s.n.invalid.Add(1)
		sub.log.Error("redis: stream entry is not a valid event; delivering it marked with "+driver.HeaderInvalidReason,
			"entry_id", e.id, "reason", reason, "uuid", msg.UUID)
	}
	e.msg, e.values = msg, nil
	e.base = driver.ContextWithPosition(sub.alive, driver.Position{
		Backend: Name, Topic: sub.stream, ConsumerGroup: sub.group, Coordinates: e.id,
	})
	if t, ok := idTime(e.id); ok {
		e.base = driver.ContextWithBrokerTime(e.base, t)
	}
}

// reportGone acks pending ids whose entries are no longer in the stream, so they stop being
// claimed, and reports them: the broker did not keep them.
func (sub *subscription) reportGone(ids []string) {
	ctx, cancel := context.WithTimeout(context.Background(), sub.cfg.WriteTimeout+sub.cfg.ReadTimeout)
	defer cancel()
	if err := sub.s.client.XAck(ctx, sub.stream, sub.group, ids...).Err(); err != nil && !isNoGroup(err) {
		sub.log.Warn("redis: XACK of pending ids without an entry failed", "err", err)
	}
	sub.s.report(DataLoss{
		Stream: sub.stream, Group: sub.group, Consumer: sub.consumer,
		Err:  fmt.Errorf("%w: %d pending entries of stream %s were trimmed or deleted before group %s acked them", ErrDataLoss, len(ids), sub.stream, sub.group),
		Lost: int64(len(ids)), LostKnown: true, ObservedAt: time.Now(), IDs: ids,
	})
}

// recoverGroup recreates a consumer group that vanished, reading the stream from its start: after
// a restart without persistence or a FLUSHALL every entry in the stream is new, and entries a
// publisher added before the group was back must not be skipped. The backlog the group had not
// read is lost with the old stream and is reported, never silently.
func (sub *subscription) recoverGroup(ctx context.Context) {
	created, err := sub.s.createGroup(ctx, sub.stream, "0")
	if err != nil {
		if ctx.Err() == nil {
			sub.log.Warn("redis: recreating vanished consumer group failed, retrying", "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return
	}
	if !created {
		return // another consumer of the group recreated it and reported the loss
	}
	sub.s.n.recreated.Add(1)
	sub.lagMu.Lock()
	lag, known, at := sub.lag, sub.lagKnown, sub.lagObserved
	sub.lagKnown, sub.lag, sub.lagObserved = false, 0, time.Time{}
	sub.lagMu.Unlock()
	d := DataLoss{
		Stream: sub.stream, Group: sub.group, Consumer: sub.consumer, ObservedAt: at,
		Lost: lag, LostKnown: known,
	}
	lost := "the entries the group had not read are lost (how many, Redis could not tell)"
	if known {
		lost = fmt.Sprintf("the %d entries the group had not read when last observed (%s before) are lost, and any added after that",
			lag, time.Since(at).Round(time.Millisecond))
	}
	d.Err = fmt.Errorf("%w: consumer group %s of stream %s vanished (server restarted without persistence, FLUSHALL, or the key was deleted or evicted); "+
		"recreated it at the stream's start; %s", ErrDataLoss, sub.group, sub.stream, lost)
	sub.s.report(d)
}

// readSinceLag takes entries this consumer read from the lag last observed, so that a loss
// report does not count entries that were read (and are handled) after the observation.
func (sub *subscription) readSinceLag(n int) {
	sub.lagMu.Lock()
	defer sub.lagMu.Unlock()
	sub.lag = max(0, sub.lag-int64(n))
}

func (sub *subscription) lagAge() time.Duration {
	sub.lagMu.Lock()
	defer sub.lagMu.Unlock()
	return time.Since(sub.lagObserved)
}

func isNoGroup(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOGROUP")
}

// isNoSuchKey reports the reply XINFO gives for a stream that does not exist ("ERR no such
// key"): Redis has no error code of its own for it, so the reply's text is all there is.
func isNoSuchKey(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "no such key") // go-redis drops the "ERR "
}

// heldSet is the ids this subscription read and has not acked yet, with when it got them: they
// are renewed so that no other consumer claims them, and never delivered twice by a claim.
type heldSet struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// addNew adds id unless it is held already and returns whether it was new.
func (h *heldSet) addNew(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.since[id]; ok {
		return false
	}
	h.since[id] = time.Now()
	return true
}

// all returns every id held.
func (h *heldSet) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.since))
	for id := range h.since {
		ids = append(ids, id)
	}
	return ids
}

func (h *heldSet) remove(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.since, id)
	}
}

// olderThan returns the ids held since before t, and marks them renewed now.
func (h *heldSet) renew(before time.Time, max int) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	now := time.Now()
	for id, since := range h.since {
		if since.Before(before) {
			ids = append(ids, id)
			h.since[id] = now
			if len(ids) == max {
				break
			}
		}
	}
	return ids
}

// backoff is a capped exponential wait between retries of a failing read.
type backoff struct{ d time.Duration }

func newBackoff() *backoff             { return &backoff{d: 50 * time.Millisecond} }
func (b *backoff) reset()              { b.d = 50 * time.Millisecond }
func (b *backoff) peek() time.Duration { return b.d }
func (b *backoff) wait(ctx context.Context) {
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	b.d = min(2*b.d, 2*time.Second)
}
