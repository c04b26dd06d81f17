package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// DedupStore remembers which events a consumer group has handled. Implementations must be safe
// for concurrent use.
type DedupStore interface {
	// Seen reports whether key was marked less than its ttl ago.
	Seen(ctx context.Context, key string) (bool, error)
	// Mark records key as handled for ttl.
	Mark(ctx context.Context, key string, ttl time.Duration) error
	// Close releases the store's connections.
	Close() error
}

// ClaimState is what DedupClaimer.Claim found.
type ClaimState int

const (
	// Claimed: the caller holds the claim and handles the event.
	Claimed ClaimState = iota
	// Done: the event was handled within the window (marked): skip it.
	Done
	// Busy: another copy holds the claim and is being handled now.
	Busy
)

// DedupClaimer is a DedupStore that can also claim an event while one copy of it is handled, so
// that a second copy arriving meanwhile (a redelivery racing the original after a rebalance, a
// producer's retry on another partition) waits for the first instead of running beside it. A
// claim expires after its ttl unless extended, so a consumer that dies holding one delays the
// other copies by at most that long. Mark replaces a claim with the mark.
type DedupClaimer interface {
	DedupStore
	// Claim claims key for ttl unless it is marked (Done) or claimed by another (Busy).
	Claim(ctx context.Context, key string, ttl time.Duration) (ClaimState, error)
	// Extend extends this store's claim on key to ttl from now; a claim that is no longer
	// this store's is left alone.
	Extend(ctx context.Context, key string, ttl time.Duration) error
	// Release drops this store's claim on key (the handler failed: another copy may run).
	Release(ctx context.Context, key string) error
}

// DefaultClaimTTL is how long a claim lasts without being extended; it is extended every third
// of it while the handler runs.
const DefaultClaimTTL = 30 * time.Second

// NewDedup returns the deduplication middleware: an event whose id the store has seen within
// the window, for the same consumer group and handler, is acked without calling the handler;
// otherwise the handler runs and, only when it succeeded, the id is marked. A poisoned event
// is therefore never marked, and its redrive is handled.
//
// With a store that is a DedupClaimer (both stores here are), a copy of an event that another
// copy is being handled for waits until that one ends: skipped when it succeeded, handled when
// it failed or its consumer died (its claim then expires within claimTTL; 0 is
// DefaultClaimTTL). A copy waiting when its context ends (the consumer drains) is nacked.
//
// Deduplication is best effort and never costs a message: when the store fails, the event is
// handled anyway (and the failure logged).
func NewDedup(store DedupStore, window, claimTTL time.Duration, logger *slog.Logger) (message.HandlerMiddleware, error) {
	if store == nil {
		return nil, errors.New("dedup: store is nil")
	}
	if window <= 0 {
		return nil, fmt.Errorf("dedup: window %s: must be positive", window)
	}
	if claimTTL < 0 {
		return nil, fmt.Errorf("dedup: claim ttl %s: must not be negative", claimTTL)
	}
	if claimTTL == 0 {
		claimTTL = DefaultClaimTTL
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &dedup{store: store, window: window, claimTTL: claimTTL, logger: logger}
	if c, ok := store.(DedupClaimer); ok {
		d.claimer = c
	}
	return d.middleware, nil
}

type dedup struct {
	store    DedupStore
	claimer  DedupClaimer // nil: the store cannot claim
	window   time.Duration
	claimTTL time.Duration
	logger   *slog.Logger
}

func (d *dedup) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		if d.claimer != nil {
			return d.claiming(h, msg)
		}
		ctx := msg.Context()
		key := dedupKey(msg)
		seen, err := d.store.Seen(ctx, key)
		if err != nil {
			d.logger.Warn("dedup store failed; handling the event without deduplication", "message_id", msg.UUID, "err", err)
		} else if seen {
			d.logger.Debug("duplicate event skipped", "message_id", msg.UUID, "dedup_key", key)
			return nil, nil
		}
		out, err := h(msg)
		if err == nil {
			d.mark(ctx, msg, key)
		}
		return out, err
	}
}

// mark records msg's key as handled; a store that fails costs deduplication, not the message.
func (d *dedup) mark(ctx context.Context, msg *message.Message, key string) {
	if err := d.store.Mark(ctx, key, d.window); err != nil {
		d.logger.Warn("dedup store failed to record a handled event; a duplicate of it will be handled", "message_id", msg.UUID, "err", err)
	}
}

// claiming handles msg under a claim on its key: it waits while another copy holds the claim,
// skips msg once that copy succeeded, and extends its own claim while the handler runs.
func (d *dedup) claiming(h message.HandlerFunc, msg *message.Message) ([]*message.Message, error) {
	ctx := msg.Context()
	key := dedupKey(msg)
	wait := 50 * time.Millisecond
	for {
		state, err := d.claimer.Claim(ctx, key, d.claimTTL)
		if err != nil {
			d.logger.Warn("dedup store failed; handling the event without deduplication", "message_id", msg.UUID, "err", err)
			return h(msg)
		}
		if state == Done {
			d.logger.Debug("duplicate event skipped", "message_id", msg.UUID, "dedup_key", key)
			return nil, nil
		}
		if state == Claimed {
			break
		}
		d.logger.Debug("another copy of the event is being handled; waiting for it", "message_id", msg.UUID, "dedup_key", key)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dedup: message %s: waited for another copy's handler until the message's context ended: %w", msg.UUID, context.Cause(ctx))
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}

	stop := make(chan struct{})
	extended := make(chan struct{})
	go func() {
		defer close(extended)
		t := time.NewTicker(d.claimTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if err := d.claimer.Extend(context.WithoutCancel(ctx), key, d.claimTTL); err != nil {
					d.logger.Warn("dedup store failed to extend a claim; a copy of the event may run beside this one", "message_id", msg.UUID, "err", err)
				}
			}
		}
	}()
	out, err := h(msg)
	close(stop)
	<-extended
	// The context may have ended with the handler (a drain): the store is still to be told.
	sctx := context.WithoutCancel(ctx)
	if err != nil {
		if rerr := d.claimer.Release(sctx, key); rerr != nil {
			d.logger.Warn("dedup store failed to release a claim; a copy of the event waits until it expires", "message_id", msg.UUID, "err", rerr)
		}
		return out, err
	}
	d.mark(sctx, msg, key)
	return out, nil
}

// dedupKey scopes an event id to the consumer group and handler: another group, or another
// handler of the same group, must still get the event.
func dedupKey(msg *message.Message) string {
	id := msg.Metadata.Get(bus.HeaderID)
	if id == "" {
		id = msg.UUID
	}
	pos, _ := bus.PositionOf(msg)
	return pos.ConsumerGroup + "/" + message.HandlerNameFromCtx(msg.Context()) + "/" + id
}

// MemoryStore is a DedupStore in this process's memory, bounded to maxEntries ids. Every id is
// kept for the same window, so ids expire in the order they were marked, and the oldest go
// first when the bound is reached.
type MemoryStore struct {
	max int

	mu     sync.Mutex
	expiry map[string]time.Time
	order  []memoryEntry        // in marking order
	claims map[string]time.Time // claimed keys, until when
	now    func() time.Time
}

type memoryEntry struct {
	key     string
	expires time.Time
}

// NewMemoryStore returns a memory store holding at most maxEntries ids.
func NewMemoryStore(maxEntries int) *MemoryStore {
	if maxEntries < 1 {
		maxEntries = 1
	}
	return &MemoryStore{max: maxEntries, expiry: map[string]time.Time{}, claims: map[string]time.Time{}, now: time.Now}
}

// Claim implements DedupClaimer.
func (s *MemoryStore) Claim(_ context.Context, key string, ttl time.Duration) (ClaimState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if exp, ok := s.expiry[key]; ok && now.Before(exp) {
		return Done, nil
	}
	if until, ok := s.claims[key]; ok && now.Before(until) {
		return Busy, nil
	}
	s.claims[key] = now.Add(ttl)
	return Claimed, nil
}

// Extend implements DedupClaimer.
func (s *MemoryStore) Extend(_ context.Context, key string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.claims[key]; ok {
		s.claims[key] = s.now().Add(ttl)
	}
	return nil
}

// Release implements DedupClaimer.
func (s *MemoryStore) Release(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.claims, key)
	return nil
}

// Seen implements DedupStore.
func (s *MemoryStore) Seen(_ context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.expiry[key]
	return ok && s.now().Before(exp), nil
}

// Mark implements DedupStore.
func (s *MemoryStore) Mark(_ context.Context, key string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	exp := now.Add(ttl)
	delete(s.claims, key)
	s.expiry[key] = exp
	s.order = append(s.order, memoryEntry{key: key, expires: exp})
	for len(s.order) > 0 && (len(s.expiry) > s.max || !now.Before(s.order[0].expires) || len(s.order) > 2*s.max) {
		e := s.order[0]
		s.order = s.order[1:]
		if cur, ok := s.expiry[e.key]; ok && cur.Equal(e.expires) {
			delete(s.expiry, e.key)
		}
	}
	return nil
}

// Len returns how many ids the store holds.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.expiry)
}

// Close implements DedupStore.
func (s *MemoryStore) Close() error { return nil }

var _ DedupClaimer = (*MemoryStore)(nil)
