package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus"
)

// redisBench prepares Redis runs: streams are deleted afterwards. The raw reference is
// go-redis: one XADD per event, pipelined within a Publish call, and XREADGROUP COUNT 1000
// with one XACK per batch read.
func redisBench(ctx context.Context, admin *bus.Bus, _ benchOptions) (*benchBackend, error) {
	var c goredis.UniversalClient
	if !admin.As(&c) {
		return nil, errors.New("the redis bus gives no client")
	}
	cleanup := func(ctx context.Context, topics []string, _ string) error {
		return c.Del(ctx, topics...).Err()
	}
	rawPrepare := func(ctx context.Context, topics []string, group string) error {
		for _, t := range topics {
			if err := c.XGroupCreateMkStream(ctx, t, group, "0").Err(); err != nil {
				return fmt.Errorf("create group on %s: %w", t, err)
			}
		}
		return nil
	}
	durability := "unknown (CONFIG GET refused)"
	if vals, err := c.ConfigGet(ctx, "*").Result(); err == nil {
		durability = fmt.Sprintf("server: appendonly %s, appendfsync %s, save %q", vals["appendonly"], vals["appendfsync"], vals["save"])
	}
	return &benchBackend{
		durability: map[string]string{"redis": durability, "go-redis": "same server; XACK after the handler, per batch read"},
		targets: []benchTarget{
			{prepare: func(context.Context, []string, string) error { return nil }, cleanup: cleanup},
			{name: "go-redis", prepare: rawPrepare, cleanup: cleanup, open: func(_ context.Context, group string) (benchClient, error) {
				return &redisClient{c: c, group: group, consumer: "bench-" + watermill.NewShortUUID()}, nil
			}},
		},
		close: func() error { return nil },
	}, nil
}

type redisClient struct {
	c               goredis.UniversalClient
	group, consumer string
	wg              sync.WaitGroup
}

func (r *redisClient) Publish(ctx context.Context, topic, key string, payloads [][]byte) error {
	_, err := r.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, pl := range payloads {
			vals := []any{"data", pl}
			if key != "" {
				vals = append(vals, "key", key)
			}
			p.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: vals})
		}
		return nil
	})
	return err
}

func (r *redisClient) Consume(ctx context.Context, topics []string, handle func([]byte)) error {
	streams := append(append([]string(nil), topics...), strings.Split(strings.Repeat(">", len(topics)), "")...)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for ctx.Err() == nil {
			res, err := r.c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: r.group, Consumer: r.consumer, Streams: streams, Count: 1000, Block: 200 * time.Millisecond}).Result()
			if err != nil {
				if !errors.Is(err, goredis.Nil) {
					time.Sleep(50 * time.Millisecond) // the stream is gone or the server away: the run's timeout reports it
				}
				continue
			}
			for _, s := range res {
				ids := make([]string, len(s.Messages))
				for i, m := range s.Messages {
					d, _ := m.Values["data"].(string)
					handle([]byte(d))
					ids[i] = m.ID
				}
				if err := r.c.XAck(ctx, s.Stream, r.group, ids...).Err(); err != nil && ctx.Err() == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
	}()
	return nil
}

// Close waits for the reader, whose blocked read ends within its 200 ms block time.
func (r *redisClient) Close() error {
	r.wg.Wait()
	return nil
}
