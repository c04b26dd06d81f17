package middleware

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// OrderingConfig is router.ordering: per-key ordering with parallelism.
type OrderingConfig struct {
	// Concurrency is how many messages one handler works on at once. Messages with the same
	// ordering key (bus.HeaderKey) are always handled one after another, in the order the
	// subscriber delivered them; messages of different keys, and messages without a key, run
	// in parallel up to Concurrency. Above 1 it needs a backend that pipelines (on Kafka, set
	// kafka.consumer.max_in_flight). Default: 1.
	Concurrency int `yaml:"concurrency"`
	// RedeliveryDelay is the pause before a message the handler chain nacked (for instance
	// because the poison queue could not be written) is handed to the handler again; later
	// messages of its key keep waiting behind it. Default: 500ms.
	RedeliveryDelay time.Duration `yaml:"redelivery_delay"`
}

// DefaultOrderingConfig returns the defaults of router.ordering.
func DefaultOrderingConfig() OrderingConfig {
	return OrderingConfig{Concurrency: 1, RedeliveryDelay: 500 * time.Millisecond}
}

// RenamedKeys points on_poisoned, which lived here before, to router.poison.
func (c *OrderingConfig) RenamedKeys() map[string]string {
	return map[string]string{"on_poisoned": "router.poison.on_poisoned"}
}

// Validate reports every problem, with paths relative to router.ordering.
func (c *OrderingConfig) Validate() error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, config.Invalid("concurrency", "must be at least 1"))
	}
	if c.RedeliveryDelay <= 0 {
		errs = append(errs, config.Invalid("redelivery_delay", "must be positive, e.g. 500ms"))
	}
	return errors.Join(errs...)
}

// Ordering is a message.SubscriberDecorator that hands a router handler the messages of its
// subscription in per-key order with bounded parallelism. Install it with the router's
// AddSubscriberDecorators (NewRouter does when the backend pipelines).
//
// Watermill's router starts a goroutine per message it receives and acks or nacks the message
// when the handler chain returns; how many messages run at once is therefore up to the
// subscriber. Ordering reads the underlying subscription itself, queues its messages per key,
// and passes the router a copy of a key's next message only when the key's previous one has
// been acked and fewer than Concurrency are out. It acks the subscriber's message when the
// router acks the copy. When the router nacks a copy, Ordering hands out a new copy after
// RedeliveryDelay, still ahead of the key's later messages: nacks never reach the subscriber,
// so no later message of the key can overtake a failing one. Retries happen inside the chain,
// so a message being retried blocks its key and nothing else.
//
// Messages without a key are not ordered among themselves. Among ready keys, the oldest
// message goes first, so the subscriber's committable position advances as fast as it can.
//
// A message whose context ends while it waits (the subscriber gave its partition away) is
// nacked and dropped: the subscriber does not commit it, and the partition's new owner gets it.
type Ordering struct {
	cfg    OrderingConfig
	logger *slog.Logger
}

// NewOrdering returns the ordering decorator.
func NewOrdering(cfg OrderingConfig, logger *slog.Logger) (*Ordering, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ordering: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Ordering{cfg: cfg, logger: logger}, nil
}

// Decorate wraps sub; it is a message.SubscriberDecorator.
func (o *Ordering) Decorate(sub message.Subscriber) (message.Subscriber, error) {
	return &orderedSubscriber{o: o, next: sub}, nil
}

type orderedSubscriber struct {
	o    *Ordering
	next message.Subscriber

	mu     sync.Mutex
	closed bool
	gates  []*gate
}

func (s *orderedSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("ordering: subscribe to %s: subscriber %w", topic, bus.ErrClosed)
	}
	in, err := s.next.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	g := newGate(ctx, in, s.o.cfg, s.o.logger.With("topic", topic))
	s.gates = append(s.gates, g)
	go g.run()
	return g.out, nil
}

// Close stops handing out messages (nacking those still queued), closes the underlying
// subscriber, which drains what is in flight, and then stops forwarding acks.
func (s *orderedSubscriber) Close() error {
	s.mu.Lock()
	gates := s.gates
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	if first {
		for _, g := range gates {
			g.stop()
		}
	}
	err := s.next.Close()
	if first {
		for _, g := range gates {
			g.abort()
		}
	}
	return err
}

// gate is one ordered subscription. Its loop owns the queues; watchers (one per copy out)
// report the router's verdict back to it.
type gate struct {
	ctx    context.Context
	in     <-chan *message.Message
	out    chan *message.Message
	cfg    OrderingConfig
	logger *slog.Logger

	results   chan verdict
	redeliver chan *pending
	stopping  chan struct{} // closed by stop: end the loop
	loopDone  chan struct{} // closed when the loop has ended
	aborting  chan struct{} // closed by abort: watchers stop waiting for verdicts
	stopOnce  sync.Once
	abortOnce sync.Once
	watchers  sync.WaitGroup

	// Owned by the loop.
	keys    map[string]*keyQueue
	ready   readyHeap
	running int
	seq     uint64
}

type pending struct {
	orig    *message.Message
	key     string
	seq     uint64
	index   int  // in the ready heap
	waiting bool // nacked, waiting for its redelivery delay
}

type keyQueue struct {
	msgs []*pending // msgs[0] is out, waiting for redelivery, or ready
	busy bool       // msgs[0] is out or waiting for redelivery
}

type verdict struct {
	p     *pending
	acked bool
}

func newGate(ctx context.Context, in <-chan *message.Message, cfg OrderingConfig, logger *slog.Logger) *gate {
	return &gate{
		ctx: ctx, in: in, out: make(chan *message.Message), cfg: cfg, logger: logger,
		results: make(chan verdict), redeliver: make(chan *pending),
		stopping: make(chan struct{}), loopDone: make(chan struct{}), aborting: make(chan struct{}),
		keys: map[string]*keyQueue{},
	}
}

func (g *gate) stop()  { g.stopOnce.Do(func() { close(g.stopping) }); <-g.loopDone }
func (g *gate) abort() { g.abortOnce.Do(func() { close(g.aborting) }); g.watchers.Wait() }

func (g *gate) run() {
	defer close(g.loopDone)
	defer close(g.out)
	defer g.nackQueued()
	defer func() {
		// Keep reading the subscription until it closes, nacking what still arrives, so that
		// the subscriber (and Watermill's decorators between it and us, whose Close waits for
		// their forwarding goroutine) never blocks on a reader that has gone.
		g.watchers.Add(1)
		go func() {
			defer g.watchers.Done()
			for m := range g.in {
				m.Nack()
			}
		}()
	}()
	var staged *pending
	var stagedCopy *message.Message
	for {
		// Stage the oldest ready message, dropping those whose subscriber gave them up.
		var out chan *message.Message
		if g.running < g.cfg.Concurrency {
			for g.ready.Len() > 0 && g.ready[0].orig.Context().Err() != nil {
				p := heap.Pop(&g.ready).(*pending)
				g.drop(p)
			}
			if g.ready.Len() > 0 {
				if staged != g.ready[0] {
					staged = g.ready[0]
					stagedCopy = staged.orig.Copy()
					stagedCopy.SetContext(staged.orig.Context())
				}
				out = g.out
			}
		}
		select {
		case m, ok := <-g.in:
			if !ok {
				// The subscription has ended: what is still queued cannot be acked into it.
				return
			}
			g.enqueue(m)
		case out <- stagedCopy:
			heap.Pop(&g.ready)
			g.keys[staged.key].busy = true
			g.running++
			g.watch(staged, stagedCopy)
			staged, stagedCopy = nil, nil
		case v := <-g.results:
			g.running--
			g.settle(v)
		case p := <-g.redeliver:
			p.waiting = false
			g.keys[p.key].busy = false
			heap.Push(&g.ready, p)
		case <-g.ctx.Done():
			return
		case <-g.stopping:
			return
		}
	}
}

func (g *gate) enqueue(m *message.Message) {
	g.seq++
	key := m.Metadata.Get(bus.HeaderKey)
	if key == "" {
		key = "\x00" + strconv.FormatUint(g.seq, 10) // no key: ordered with nothing
	}
	p := &pending{orig: m, key: key, seq: g.seq}
	q := g.keys[key]
	if q == nil {
		q = &keyQueue{}
		g.keys[key] = q
	}
	q.msgs = append(q.msgs, p)
	if len(q.msgs) == 1 {
		heap.Push(&g.ready, p)
	}
}

// watch waits for the router's verdict on the copy c of p and reports it to the loop; once the
// loop has ended it applies the verdict to the original itself.
func (g *gate) watch(p *pending, c *message.Message) {
	g.watchers.Add(1)
	go func() {
		defer g.watchers.Done()
		var acked bool
		select {
		case <-c.Acked():
			acked = true
		case <-c.Nacked():
		case <-g.aborting:
			return // the subscriber has closed and drained: the original is no longer watched
		}
		if acked {
			// Ack before the loop frees the key, so that the subscriber may commit it as soon
			// as possible; the key's next message is handed out only after this.
			p.orig.Ack()
		}
		select {
		case g.results <- verdict{p: p, acked: acked}:
		case <-g.loopDone:
			if !acked {
				p.orig.Nack()
			}
		}
	}()
}

// settle applies a verdict: an ack frees the key for its next message; a nack hands the same
// message out again after the redelivery delay, unless its subscriber has given it up.
func (g *gate) settle(v verdict) {
	q := g.keys[v.p.key]
	if v.acked || v.p.orig.Context().Err() != nil {
		if !v.acked {
			v.p.orig.Nack()
		}
		g.advance(q, v.p.key)
		return
	}
	p := v.p
	p.waiting = true
	g.logger.Debug("message nacked by the handler chain; handing it out again", "message_id", p.orig.UUID, "in", g.cfg.RedeliveryDelay)
	time.AfterFunc(g.cfg.RedeliveryDelay, func() {
		select {
		case g.redeliver <- p:
		case <-g.loopDone: // nackQueued has nacked it: it is still at its key's head
		}
	})
}

// advance removes a key's head and makes its next message ready.
func (g *gate) advance(q *keyQueue, key string) {
	q.msgs[0] = nil
	q.msgs = q.msgs[1:]
	q.busy = false
	if len(q.msgs) == 0 {
		delete(g.keys, key)
		return
	}
	heap.Push(&g.ready, q.msgs[0])
}

// drop nacks a ready message its subscriber gave up, and moves its key on.
func (g *gate) drop(p *pending) {
	p.orig.Nack()
	g.advance(g.keys[p.key], p.key)
}

// nackQueued nacks every message the loop still holds and has not handed out: the subscriber
// redelivers them (or, when it has closed, does not commit them).
func (g *gate) nackQueued() {
	for _, q := range g.keys {
		for i, p := range q.msgs {
			if i == 0 && q.busy {
				// Out with the router, or waiting for redelivery. Out: its watcher nacks it if
				// the router nacks; waiting: nobody else will.
				if p.waiting {
					p.orig.Nack()
				}
				continue
			}
			p.orig.Nack()
		}
	}
}

// readyHeap orders the heads of idle keys by arrival, oldest first.
type readyHeap []*pending

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *readyHeap) Push(x any) {
	p := x.(*pending)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *readyHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	p.index = -1
	*h = old[:len(old)-1]
	return p
}
