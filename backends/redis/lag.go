package redis

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// lagFunc answers driver.Conn.Lag from XINFO GROUPS on the topic's stream: the group's "lag"
// (entries not yet delivered to the group) and "pending" (delivered, not yet XACKed). Before
// Redis 7, or when Redis cannot tell (after XDEL or XSETID), "lag" is unknown; it is then the
// stream's length when the group has read nothing, else -1.
func lagFunc(client redis.UniversalClient, group string) driver.LagFunc {
	return func(ctx context.Context, topic string) ([]driver.PartitionLag, error) {
		if group == "" {
			return nil, fmt.Errorf("redis lag of %s: no consumer group configured: %w", topic, driver.ErrNotSupported)
		}
		pl := driver.PartitionLag{Topic: topic, Group: group, Partition: topic}
		groups, err := client.XInfoGroups(ctx, topic).Result()
		if err != nil {
			if isNoSuchKey(err) {
				return []driver.PartitionLag{pl}, nil // no stream yet: nothing to read
			}
			return nil, fmt.Errorf("redis lag of %s for group %s: %w: %w", topic, group, driver.ErrUnavailable, err)
		}
		for _, g := range groups {
			if g.Name != group {
				continue
			}
			pl.Lag, pl.Pending = g.Lag, g.Pending
			if g.Lag < 0 && g.EntriesRead == 0 && g.LastDeliveredID == "0-0" { // read nothing; not after XGROUP SETID
				if pl.Lag, err = client.XLen(ctx, topic).Result(); err != nil {
					return nil, fmt.Errorf("redis lag of %s: XLEN: %w: %w", topic, driver.ErrUnavailable, err)
				}
			}
			return []driver.PartitionLag{pl}, nil
		}
		// The group does not exist yet: it will be created on subscribe, from start_from; the
		// stream's length is what it could have to read.
		if pl.Lag, err = client.XLen(ctx, topic).Result(); err != nil {
			return nil, fmt.Errorf("redis lag of %s: XLEN: %w: %w", topic, driver.ErrUnavailable, err)
		}
		return []driver.PartitionLag{pl}, nil
	}
}
