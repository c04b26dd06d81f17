package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// liveBlocks is how many consumer.block_time periods a consumer may go without reading before
// Rewind and Status stop counting it as live. A running subscriber issues XREADGROUP at least
// once per block_time while it waits, and Redis's "idle" is the time since a consumer's last
// read attempt, so a consumer idle for several periods has stopped (or is stuck in one handler
// that long; Redis cannot tell the two apart).
const liveBlocks = 5

// admin answers driver.Admin on Redis Streams: a topic is a stream, XGROUP SETID moves a group,
// XINFO describes streams, groups and consumers.
type admin struct {
	client redis.UniversalClient
	// live is how recently a consumer must have read to count as a live member.
	live   time.Duration
	maxLen int64
}

func newAdmin(client redis.UniversalClient, cfg *Config) *driver.Admin {
	a := &admin{client: client, live: liveBlocks * cfg.Consumer.BlockTime, maxLen: cfg.Publisher.MaxLen}
	return &driver.Admin{Rewind: a.rewind, Status: a.status, DeleteTopics: a.deleteTopics}
}

// rewind sets the group's last delivered id to just before the target (XGROUP SETID), creating
// the group there if it does not exist. Entries pending in the group stay pending. It refuses
// while a consumer of the group read within the live window.
func (a *admin) rewind(ctx context.Context, topic, group string, to driver.RewindTarget, dryRun bool) ([]driver.PartitionPosition, error) {
	what := fmt.Sprintf("redis rewind of %s for group %s", topic, group)
	if _, err := a.client.XInfoStream(ctx, topic).Result(); err != nil {
		if isNoSuchKey(err) {
			return nil, fmt.Errorf("%s: stream %s: %w", what, topic, driver.ErrUnknownTopic)
		}
		return nil, classify(what+": XINFO STREAM", err)
	}
	pos := driver.PartitionPosition{Topic: topic, Group: group, Partition: topic}
	exists := false
	groups, err := a.client.XInfoGroups(ctx, topic).Result()
	if err != nil {
		return nil, classify(what+": XINFO GROUPS", err)
	}
	for _, g := range groups {
		if g.Name == group {
			exists = true
			if pos.From, err = a.next(ctx, topic, g.LastDeliveredID); err != nil {
				return nil, classify(what, err)
			}
		}
	}
	if exists {
		consumers, err := a.client.XInfoConsumers(ctx, topic, group).Result()
		if err != nil {
			return nil, classify(what+": XINFO CONSUMERS", err)
		}
		var live []string
		for _, c := range consumers {
			if c.Idle < a.live {
				live = append(live, fmt.Sprintf("%s (read %s ago, %d pending)", c.Name, c.Idle.Round(time.Millisecond), c.Pending))
			}
		}
		if len(live) > 0 {
			return nil, fmt.Errorf("%s: %w: %s; stop them first (a consumer counts as live while it read within %s, %d × redis.consumer.block_time)",
				what, driver.ErrGroupActive, strings.Join(live, ", "), a.live, liveBlocks)
		}
	}
	id := IDBefore(to.At)
	if to.Position != "" {
		var ok bool
		if id, ok = idBefore(to.Position); !ok {
			return nil, fmt.Errorf("%s: position %q is not a stream id such as 1732363200000-0: %w", what, to.Position, driver.ErrInvalidPosition)
		}
	}
	if pos.To, err = a.next(ctx, topic, id); err != nil {
		return nil, classify(what, err)
	}
	if dryRun {
		return []driver.PartitionPosition{pos}, nil
	}
	if exists {
		err = a.client.XGroupSetID(ctx, topic, group, id).Err()
	} else {
		err = a.client.XGroupCreate(ctx, topic, group, id).Err()
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("%s: set the group's last delivered id to %s", what, id), err)
	}
	return []driver.PartitionPosition{pos}, nil
}

// next is the id of the first entry after id, the next one a group whose last delivered id is
// id is handed; "end" when there is none yet.
func (a *admin) next(ctx context.Context, stream, id string) (string, error) {
	if id == "" || id == "$" {
		return "end", nil
	}
	msgs, err := a.client.XRangeN(ctx, stream, "("+id, "+", 1).Result()
	if err != nil {
		return "", fmt.Errorf("XRANGE %s (%s: %w", stream, id, err)
	}
	if len(msgs) == 0 {
		return "end", nil
	}
	return msgs[0].ID, nil
}

// status describes topic's stream (every stream key when topic is "": SCAN TYPE stream, which
// on a cluster client sees one node's keys), its groups and their consumers.
func (a *admin) status(ctx context.Context, topic string, groups []string) ([]driver.TopicStatus, error) {
	topics := []string{topic}
	if topic == "" {
		topics = nil
		iter := a.client.ScanType(ctx, 0, "*", 500, "stream").Iterator()
		for iter.Next(ctx) {
			topics = append(topics, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return nil, classify("redis status: SCAN TYPE stream", err)
		}
		sort.Strings(topics)
	}
	out := make([]driver.TopicStatus, 0, len(topics))
	for _, t := range topics {
		ts, err := a.topicStatus(ctx, t, groups)
		if err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	return out, nil
}

func (a *admin) topicStatus(ctx context.Context, topic string, named []string) (driver.TopicStatus, error) {
	ts := driver.TopicStatus{Topic: topic}
	if a.maxLen > 0 {
		ts.Retention = fmt.Sprintf("publisher.max_len ~%d", a.maxLen)
	}
	ps := driver.PartitionStatus{Partition: topic}
	info, err := a.client.XInfoStream(ctx, topic).Result()
	if err != nil && !isNoSuchKey(err) {
		return ts, classify("redis status of "+topic+": XINFO STREAM", err)
	}
	if err == nil {
		ps.Messages, ps.Oldest, ps.Newest = info.Length, info.FirstEntry.ID, info.LastEntry.ID
	}
	ts.Partitions = []driver.PartitionStatus{ps}
	var names []string
	if err == nil {
		groups, err := a.client.XInfoGroups(ctx, topic).Result()
		if err != nil {
			return ts, classify("redis status of "+topic+": XINFO GROUPS", err)
		}
		for _, g := range groups {
			if len(named) == 0 || slices.Contains(named, g.Name) {
				names = append(names, g.Name)
			}
		}
	}
	for _, g := range named {
		if !slices.Contains(names, g) {
			names = append(names, g) // reported with the lag it would have when created
		}
	}
	sort.Strings(names)
	for _, g := range names {
		gs := driver.GroupStatus{Group: g, State: "absent"}
		consumers, err := a.client.XInfoConsumers(ctx, topic, g).Result()
		if err != nil && !isNoGroup(err) && !isNoSuchKey(err) {
			return ts, classify(fmt.Sprintf("redis status of %s: XINFO CONSUMERS %s", topic, g), err)
		}
		if err == nil {
			gs.State = "inactive"
		}
		for _, c := range consumers {
			gs.Members = append(gs.Members, driver.MemberStatus{ID: c.Name, Pending: c.Pending, Idle: c.Idle})
			if c.Idle < a.live {
				gs.State = "active"
			}
		}
		gs.Consumers = len(gs.Members)
		if gs.Lag, err = lagFunc(a.client, g)(ctx, topic); err != nil {
			return ts, err
		}
		ts.Groups = append(ts.Groups, gs)
	}
	return ts, nil
}

// deleteTopics answers driver.Admin.DeleteTopics: DEL of each stream, one by one (on a Cluster
// the streams may live in different slots); the groups go with their streams.
func (a *admin) deleteTopics(ctx context.Context, topics, _ []string) error {
	var errs []error
	for _, t := range topics {
		if err := a.client.Del(ctx, t).Err(); err != nil {
			errs = append(errs, classify("redis: delete stream "+t, err))
		}
	}
	return errors.Join(errs...)
}
