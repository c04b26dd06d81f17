package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/middleware"
)

// DefaultParkConfig returns the defaults of router.poison.redis: Config's, with the key prefix
// "eventbus:park:".
func DefaultParkConfig() Config {
	c := DefaultConfig()
	c.KeyPrefix = "eventbus:park:"
	return c
}

// Park is a middleware.ParkStore in Redis: one key per parked ParkKey holding its
// middleware.ParkState as JSON, changed in an optimistic transaction (WATCH, then MULTI/EXEC,
// retried on a conflict), so that the instances of a consumer group, and a consumer restarted
// or handed the partition in a rebalance, keep a key parked. A key that is unparked is deleted;
// a parked key stays until its poisoned messages are redriven and succeed, or the operator
// redrives its later messages without them.
type Park struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	owned   bool
}

// OpenPark connects to the server cfg names and checks that it answers.
func OpenPark(ctx context.Context, cfg Config) (*Park, error) {
	client, err := connect(ctx, cfg, "park")
	if err != nil {
		return nil, err
	}
	return &Park{client: client, prefix: cfg.KeyPrefix, timeout: cfg.Timeout, owned: true}, nil
}

// ParkFromClient uses an existing client, which Close leaves open.
func ParkFromClient(client redis.UniversalClient, keyPrefix string, timeout time.Duration) *Park {
	if timeout <= 0 {
		timeout = time.Second
	}
	return &Park{client: client, prefix: keyPrefix, timeout: timeout}
}

// Admit implements middleware.ParkStore.
func (p *Park) Admit(ctx context.Context, k middleware.ParkKey, id string, redriven bool) (behind string, park bool, err error) {
	err = p.update(ctx, k, func(s *middleware.ParkState) *middleware.ParkState {
		var next *middleware.ParkState
		next, behind, park = s.Admit(id, redriven)
		return next
	})
	return behind, park, err
}

// Poisoned implements middleware.ParkStore.
func (p *Park) Poisoned(ctx context.Context, k middleware.ParkKey, id string) error {
	return p.update(ctx, k, func(s *middleware.ParkState) *middleware.ParkState { return s.MarkPoisoned(id) })
}

// Handled implements middleware.ParkStore.
func (p *Park) Handled(ctx context.Context, k middleware.ParkKey, id string) error {
	return p.update(ctx, k, func(s *middleware.ParkState) *middleware.ParkState { return s.MarkHandled(id) })
}

// Close closes the client if the store opened it.
func (p *Park) Close() error {
	if !p.owned {
		return nil
	}
	if err := p.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return err
	}
	return nil
}

// key is the Redis key of k's state. The parts are joined with a separator that cannot occur
// in them unescaped, so that two ParkKeys never share a Redis key.
func (p *Park) key(k middleware.ParkKey) string {
	esc := strings.NewReplacer(`\`, `\\`, "|", `\|`)
	return p.prefix + esc.Replace(k.Handler) + "|" + esc.Replace(k.Topic) + "|" + esc.Replace(k.Key)
}

// maxConflicts bounds the retries of a transaction that other writers keep invalidating; a
// key's messages come one at a time, so more than a couple means something else is wrong.
const maxConflicts = 10

// update applies change to k's state in one optimistic transaction. A nil state from change
// deletes the key.
func (p *Park) update(ctx context.Context, k middleware.ParkKey, change func(*middleware.ParkState) *middleware.ParkState) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	key := p.key(k)
	txf := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, key).Bytes()
		var state *middleware.ParkState
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			state = &middleware.ParkState{}
			if err := json.Unmarshal(raw, state); err != nil {
				return fmt.Errorf("park state %s is not what this store writes: %w", key, err)
			}
		}
		next := change(state)
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			if next == nil {
				pipe.Del(ctx, key)
				return nil
			}
			enc, err := json.Marshal(next)
			if err != nil {
				return err
			}
			pipe.Set(ctx, key, enc, 0)
			return nil
		})
		return err
	}
	for range maxConflicts {
		err := p.client.Watch(ctx, txf, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue // another writer changed the key meanwhile: read it again
		}
		if err != nil {
			return fmt.Errorf("redis park store: %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("redis park store: %s: changed by others %d times in a row", key, maxConflicts)
}
