package main

import (
	"context"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// redisPageSize is how many entries one XRANGE call reads.
const redisPageSize = 500

// redisPoisonQueue is a Redis poison stream read with XRANGE, which takes nothing and sees every
// entry whatever consumer groups hold; a run removes an entry with XDEL.
type redisPoisonQueue struct {
	b                  *bus.Bus
	client             goredis.UniversalClient
	topic, poisonTopic string
	end                string // the last entry id when the run started
	maxLen             int64  // redis.maxlen, which the publisher trims streams to
}

func newRedisPoisonQueue(b *bus.Bus, cfg *config.Config, f *dlqFlags) (*redisPoisonQueue, error) {
	var client goredis.UniversalClient
	if !b.As(&client) {
		return nil, errors.New("redis backend does not expose its client")
	}
	bc, err := bus.BackendConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc, ok := bc.(*redis.Config)
	if !ok {
		return nil, fmt.Errorf("redis backend config is a %T", bc)
	}
	return &redisPoisonQueue{b: b, client: client, topic: f.topic, poisonTopic: f.poisonTopic, maxLen: rc.Publisher.MaxLen}, nil
}

func (q *redisPoisonQueue) describe() string { return "redis stream " + q.poisonTopic }

func (q *redisPoisonQueue) open(ctx context.Context) (int, error) {
	n, err := q.client.XLen(ctx, q.poisonTopic).Result()
	if err != nil {
		return 0, fmt.Errorf("XLEN %s: %w", q.poisonTopic, err)
	}
	if n == 0 {
		exists, err := q.client.Exists(ctx, q.poisonTopic, q.topic).Result()
		if err != nil {
			return 0, fmt.Errorf("EXISTS %s %s: %w", q.poisonTopic, q.topic, err)
		}
		if exists == 0 {
			return 0, fmt.Errorf("%w %s: neither it nor its poison stream %s exists on redis", errUnknownTopic, q.topic, q.poisonTopic)
		}
		return 0, nil
	}
	last, err := q.client.XRevRangeN(ctx, q.poisonTopic, "+", "-", 1).Result()
	if err != nil {
		return 0, fmt.Errorf("XREVRANGE %s: %w", q.poisonTopic, err)
	}
	if len(last) == 0 {
		return 0, nil // emptied since XLEN
	}
	q.end = last[0].ID
	return int(n), nil
}

func (q *redisPoisonQueue) scan(ctx context.Context, act bool, visit func(poisonRecord) (dlqDecision, error)) error {
	if q.end == "" {
		return nil
	}
	from := "-"
	for {
		page, err := q.client.XRangeN(ctx, q.poisonTopic, from, q.end, redisPageSize).Result()
		if err != nil {
			return fmt.Errorf("XRANGE %s %s %s: %w", q.poisonTopic, from, q.end, err)
		}
		for _, e := range page {
			d, err := visit(poisonRecord{msg: redis.DecodeEntry(q.poisonTopic, e), position: "redis " + q.poisonTopic + " " + e.ID})
			if err != nil {
				return err
			}
			if act && d.remove {
				if err := q.remove(ctx, e.ID, d); err != nil {
					return err
				}
				d.removed()
			}
		}
		if len(page) < redisPageSize {
			return nil
		}
		from = "(" + page[len(page)-1].ID
	}
}

// remove deletes entry id of the poison stream, after adding d's redrive to its stream. Both
// happen in one MULTI, so an interrupted run neither loses nor repeats the redrive; on a
// Cluster, where the two streams may live in different slots, one after the other.
func (q *redisPoisonQueue) remove(ctx context.Context, id string, d dlqDecision) error {
	if d.send == nil {
		if err := q.client.XDel(ctx, q.poisonTopic, id).Err(); err != nil {
			return fmt.Errorf("XDEL %s %s: %w", q.poisonTopic, id, err)
		}
		return nil
	}
	if _, cluster := q.client.(*goredis.ClusterClient); cluster {
		if err := sendRedrive(q.b, d); err != nil {
			return err
		}
		return q.remove(ctx, id, dlqDecision{remove: true})
	}
	fields, err := redis.EncodeEntry(d.topic, d.send)
	if err != nil {
		return fmt.Errorf("redrive %s to %s: %w (it stays in the poison queue)", d.send.UUID, d.topic, err)
	}
	_, err = q.client.TxPipelined(ctx, func(tx goredis.Pipeliner) error {
		tx.XAdd(ctx, &goredis.XAddArgs{Stream: d.topic, Values: fields, MaxLen: q.maxLen, Approx: q.maxLen > 0})
		tx.XDel(ctx, q.poisonTopic, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redrive %s to %s and XDEL %s %s: %w (it stays in the poison queue)", d.send.UUID, d.topic, q.poisonTopic, id, err)
	}
	return nil
}

func (q *redisPoisonQueue) close() error { return nil }
