package middleware

import (
	"context"
	"slices"
	"sync"
)

// ParkKey names the messages the park policy orders together: one handler's messages of one
// ordering key on one topic.
type ParkKey struct{ Handler, Topic, Key string }

// ParkStore keeps the park policy's state (see Park): per ParkKey, the messages still poisoned,
// earliest first, and when each later message was parked. A key's messages come one at a time
// (the ordering decorator hands out a key's next message only after the previous one is acked),
// so calls for one key do not interleave within a process; a store shared between the
// instances of a consumer group must still make each call atomic, since a rebalance can move a
// key between them. Implementations must be safe for concurrent use.
type ParkStore interface {
	// Admit decides whether message id of k may reach the handler, or is parked behind the
	// key's earliest poisoned message (returned as behind). redriven says the message was sent
	// back by `eventbus dlq redrive`.
	Admit(ctx context.Context, k ParkKey, id string, redriven bool) (behind string, park bool, err error)
	// Poisoned records that id of k went to the poison queue for a failure.
	Poisoned(ctx context.Context, k ParkKey, id string) error
	// Handled records that id of k succeeded; once none of the key's messages is poisoned, the
	// key is unparked.
	Handled(ctx context.Context, k ParkKey, id string) error
}

// ParkState is what the park policy knows of one key. Its methods are the policy itself, so
// that every ParkStore applies the same rules to the state it keeps; it is exported for stores
// that keep it elsewhere (redisstore encodes it as JSON).
type ParkState struct {
	// Poisoned lists the key's messages still poisoned, earliest first.
	Poisoned []PoisonedID `json:"poisoned"`
	// ParkedAt is the Seq at which each later message of the key was last parked.
	ParkedAt map[string]uint64 `json:"parked_at"`
	// Seq orders the key's poisonings and parkings.
	Seq uint64 `json:"seq"`
}

// PoisonedID is a poisoned message of a key and the Seq at which it last failed.
type PoisonedID struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"`
}

// Admit applies ParkStore.Admit to s, which may be nil (the key is not parked). It returns the
// new state, nil when the key is (or stays) unparked.
func (s *ParkState) Admit(id string, redriven bool) (next *ParkState, behind string, park bool) {
	if s == nil || len(s.Poisoned) == 0 {
		return nil, "", false
	}
	earliest := s.Poisoned[0]
	if redriven {
		if earliest.ID == id {
			return s, "", false // the key's earliest broken message, sent back: try it again
		}
		at, wasParked := s.ParkedAt[id]
		if !slices.ContainsFunc(s.Poisoned, func(e PoisonedID) bool { return e.ID == id }) &&
			(!wasParked || earliest.Seq < at) {
			// A message parked here (or one unknown), redriven while the earliest poisoned
			// message has not failed again since: the operator sent the key's later messages
			// back without it (purged, or left in the queue). Unpark the key.
			return nil, "", false
		}
	}
	s.Seq++
	if s.ParkedAt == nil {
		s.ParkedAt = map[string]uint64{}
	}
	s.ParkedAt[id] = s.Seq
	return s, earliest.ID, true
}

// MarkPoisoned applies ParkStore.Poisoned to s (nil: a key not parked yet) and returns the new
// state.
func (s *ParkState) MarkPoisoned(id string) *ParkState {
	if s == nil {
		s = &ParkState{ParkedAt: map[string]uint64{}}
	}
	s.Seq++
	for i := range s.Poisoned {
		if s.Poisoned[i].ID == id {
			s.Poisoned[i].Seq = s.Seq // failed again: it keeps its place
			return s
		}
	}
	s.Poisoned = append(s.Poisoned, PoisonedID{ID: id, Seq: s.Seq})
	return s
}

// MarkHandled applies ParkStore.Handled to s and returns the new state, nil once no message of
// the key is poisoned (the key is unparked).
func (s *ParkState) MarkHandled(id string) *ParkState {
	if s == nil {
		return nil
	}
	s.Poisoned = slices.DeleteFunc(s.Poisoned, func(e PoisonedID) bool { return e.ID == id })
	if len(s.Poisoned) == 0 {
		return nil
	}
	return s
}

// MemoryParkStore keeps the park state in this process's memory: the default. A restart, or a
// rebalance that moves a key to another instance, forgets it, and the key's later messages are
// handled again; use a shared store (redisstore.Park) to keep it.
type MemoryParkStore struct {
	mu   sync.Mutex
	keys map[ParkKey]*ParkState
}

// NewMemoryParkStore returns an empty memory store.
func NewMemoryParkStore() *MemoryParkStore { return &MemoryParkStore{keys: map[ParkKey]*ParkState{}} }

// Admit implements ParkStore.
func (m *MemoryParkStore) Admit(_ context.Context, k ParkKey, id string, redriven bool) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, behind, park := m.keys[k].Admit(id, redriven)
	m.set(k, next)
	return behind, park, nil
}

// Poisoned implements ParkStore.
func (m *MemoryParkStore) Poisoned(_ context.Context, k ParkKey, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set(k, m.keys[k].MarkPoisoned(id))
	return nil
}

// Handled implements ParkStore.
func (m *MemoryParkStore) Handled(_ context.Context, k ParkKey, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set(k, m.keys[k].MarkHandled(id))
	return nil
}

func (m *MemoryParkStore) set(k ParkKey, s *ParkState) {
	if s == nil {
		delete(m.keys, k)
		return
	}
	m.keys[k] = s
}
