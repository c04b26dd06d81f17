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

// NewDedup returns the deduplication middleware: an event whose id the store has seen within
// the window, for the same consumer group and handler, is acked without calling the handler;
// otherwise the handler runs and, only when it succeeded, the id is marked. A poisoned event
// is therefore never marked, and its redrive is handled.
//
// Deduplication is best effort and never costs a message: when the store fails, the event is
// handled anyway (and the failure logged). Two copies of an event handled at the same moment
// (a redelivery racing the original) can both run; per-key ordering serializes copies that
// share a key.
func NewDedup(store DedupStore, window time.Duration, logger *slog.Logger) (message.HandlerMiddleware, error) {
	if store == nil {
		return nil, errors.New("dedup: store is nil")
	}
	if window <= 0 {
		return nil, fmt.Errorf("dedup: window %s: must be positive", window)
	}
	if logger == nil {
		logger = slog.Default()
	}
	d := &dedup{store: store, window: window, logger: logger}
	return d.middleware, nil
}

type dedup struct {
	store  DedupStore
	window time.Duration
	logger *slog.Logger
}

func (d *dedup) middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
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
		if err != nil {
			return out, err
		}
		if err := d.store.Mark(ctx, key, d.window); err != nil {
			d.logger.Warn("dedup store failed to record a handled event; a duplicate of it will be handled", "message_id", msg.UUID, "err", err)
		}
		return out, nil
	}
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
	order  []memoryEntry // in marking order
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
	return &MemoryStore{max: maxEntries, expiry: map[string]time.Time{}, now: time.Now}
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
