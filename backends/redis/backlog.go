package redis

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// streamEnd is a stream's end for a group: the id of its last entry.
type streamEnd struct {
	last string
	done bool
}

func (e *streamEnd) Reached() bool { return e.done }

func (e *streamEnd) Saw(msg *message.Message) {
	if pos, ok := driver.PositionFrom(msg.Context()); ok && !idLess(pos.Coordinates, e.last) {
		e.done = true
	}
}

// backlogEnd answers driver.Admin.BacklogEnd for group, which, when it does not exist yet, is
// created at start (an XGROUP CREATE id: "0", "$" or an entry id). It must run before the
// subscription reads: reading moves the group's last delivered id.
func backlogEnd(client redis.UniversalClient, group, start string) driver.BacklogEndFunc {
	return func(ctx context.Context, topic string) (driver.BacklogEnd, error) {
		info, err := client.XInfoStream(ctx, topic).Result()
		if err != nil && !isNoSuchKey(err) {
			return nil, fmt.Errorf("redis: XINFO STREAM %s: %w", topic, err)
		}
		if err != nil || info.Length == 0 {
			return &streamEnd{done: true}, nil
		}
		e := &streamEnd{last: info.LastEntry.ID}
		groups, err := client.XInfoGroups(ctx, topic).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: XINFO GROUPS %s: %w", topic, err)
		}
		from := start
		for _, g := range groups {
			if g.Name == group {
				from = g.LastDeliveredID
			}
		}
		e.done = from == "$" || !idLess(from, e.last)
		return e, nil
	}
}
