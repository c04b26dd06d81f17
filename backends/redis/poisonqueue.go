package redis

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// poisonPageSize is how many entries one XRANGE call reads.
const poisonPageSize = 500

// poisonQueue is a Redis poison stream read with XRANGE, which takes nothing and sees every
// entry whatever consumer groups hold; a run removes an entry with XDEL.
type poisonQueue struct {
	client             redis.UniversalClient
	pub                *publisher
	topic, poisonTopic string
	end                string // the last entry id when the run started
}

// poisonQueueOpener answers driver.Admin.PoisonQueue on client; a redrive is added to its
// topic as pub adds entries (same trimming).
func poisonQueueOpener(client redis.UniversalClient, pub *publisher) driver.PoisonQueueFunc {
	return func(_ context.Context, o driver.PoisonQueueOptions) (driver.PoisonQueue, error) {
		return &poisonQueue{client: client, pub: pub, topic: o.Topic, poisonTopic: o.PoisonTopic}, nil
	}
}

func (q *poisonQueue) Describe() string { return "redis stream " + q.poisonTopic }

func (q *poisonQueue) Depth(ctx context.Context) (int, error) {
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
			return 0, fmt.Errorf("%w %s: neither it nor its poison stream %s exists on redis", driver.ErrUnknownTopic, q.topic, q.poisonTopic)
		}
	}
	return int(n), nil
}

func (q *poisonQueue) Open(ctx context.Context) (int, error) {
	n, err := q.Depth(ctx)
	if err != nil || n == 0 {
		return 0, err
	}
	last, err := q.client.XRevRangeN(ctx, q.poisonTopic, "+", "-", 1).Result()
	if err != nil {
		return 0, fmt.Errorf("XREVRANGE %s: %w", q.poisonTopic, err)
	}
	if len(last) == 0 {
		return 0, nil // emptied since XLEN
	}
	q.end = last[0].ID
	return n, nil
}

func (q *poisonQueue) Scan(ctx context.Context, act bool, visit func(driver.PoisonRecord) (driver.PoisonDecision, error)) error {
	if q.end == "" {
		return nil
	}
	from := "-"
	for {
		page, err := q.client.XRangeN(ctx, q.poisonTopic, from, q.end, poisonPageSize).Result()
		if err != nil {
			return fmt.Errorf("XRANGE %s %s %s: %w", q.poisonTopic, from, q.end, err)
		}
		for _, e := range page {
			d, err := visit(driver.PoisonRecord{Msg: DecodeEntry(q.poisonTopic, e), Position: "redis " + q.poisonTopic + " " + e.ID})
			if err != nil {
				return err
			}
			if act && d.Remove {
				if err := q.remove(ctx, e.ID, d); err != nil {
					return err
				}
				d.Removed()
			}
		}
		if len(page) < poisonPageSize {
			return nil
		}
		from = "(" + page[len(page)-1].ID
	}
}

// remove deletes entry id of the poison stream, after adding d's redrive to its stream. Both
// happen in one MULTI, so an interrupted run neither loses nor repeats the redrive; on a
// Cluster, where the two streams may live in different slots, one after the other.
func (q *poisonQueue) remove(ctx context.Context, id string, d driver.PoisonDecision) error {
	if d.Send == nil {
		if err := q.client.XDel(ctx, q.poisonTopic, id).Err(); err != nil {
			return fmt.Errorf("XDEL %s %s: %w", q.poisonTopic, id, err)
		}
		return nil
	}
	if _, cluster := q.client.(*redis.ClusterClient); cluster {
		if err := q.pub.Publish(d.Topic, d.Send); err != nil {
			return fmt.Errorf("redrive %s to %s: %w (it stays in the poison queue)", d.Send.UUID, d.Topic, err)
		}
		return q.remove(ctx, id, driver.PoisonDecision{Remove: true})
	}
	fields, err := EncodeEntry(d.Topic, d.Send)
	if err != nil {
		return fmt.Errorf("redrive %s to %s: %w (it stays in the poison queue)", d.Send.UUID, d.Topic, err)
	}
	retention, maxLen := q.pub.cfg.limits(d.Topic)
	_, err = q.client.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		queueAdd(ctx, tx, d.Topic, fields, retention, maxLen)
		tx.XDel(ctx, q.poisonTopic, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redrive %s to %s and XDEL %s %s: %w (it stays in the poison queue)", d.Send.UUID, d.Topic, q.poisonTopic, id, err)
	}
	return nil
}

func (q *poisonQueue) Close() error { return nil }
