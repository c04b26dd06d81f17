package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// maintain runs every ClaimInterval until ctx ends: it records the group's lag (to report what a
// data loss cost), renews this consumer's hold on the entries it has, claims entries other
// consumers left idle, and removes consumers that are gone and have nothing pending. Claims
// start once the reader has read this consumer's own pending entries (see ownRead).
func (sub *subscription) maintain(ctx context.Context) {
	t := time.NewTicker(sub.cfg.Consumer.ClaimInterval)
	defer t.Stop()
	sub.observeLag(ctx)
	ownRead := sub.ownRead
	for {
		select {
		case <-ctx.Done():
			return
		case <-ownRead:
			ownRead = nil
			sub.claim(ctx) // entries a stopped consumer left are taken over at start, not a tick later
			continue
		case <-t.C:
		}
		sub.observeLag(ctx)
		sub.renew(ctx)
		if ownRead == nil {
			sub.claim(ctx)
		}
		sub.reapConsumers(ctx)
	}
}

func (sub *subscription) cmdCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, sub.cfg.WriteTimeout+sub.cfg.ReadTimeout)
}

// observeLag records how many entries the group has not read yet (XINFO GROUPS, Redis 7).
func (sub *subscription) observeLag(ctx context.Context) {
	if !sub.s.reportsLag {
		return // before Redis 7 XINFO GROUPS has no lag; a loss report then says "unknown"
	}
	cctx, cancel := sub.cmdCtx(ctx)
	defer cancel()
	groups, err := sub.s.client.XInfoGroups(cctx, sub.stream).Result()
	if err != nil {
		return // a missing stream or group is found and handled by the reader
	}
	for _, g := range groups {
		if g.Name != sub.group {
			continue
		}
		sub.lagMu.Lock()
		sub.lag, sub.lagKnown, sub.lagObserved = g.Lag, g.Lag >= 0, time.Now()
		if g.Lag < 0 {
			sub.lag = 0
		}
		sub.lagMu.Unlock()
		return
	}
}

// renew resets the idle time of entries this subscription has held for a third of MinIdle, so
// that other consumers do not claim entries that are buffered or being handled here. XCLAIM
// with JUSTID does not count as a delivery; an entry another consumer claimed meanwhile has a
// short idle time and stays where it is.
func (sub *subscription) renew(ctx context.Context) {
	third := sub.cfg.Consumer.MinIdle / 3
	ids := sub.held.renew(time.Now().Add(-third), 10000)
	if len(ids) == 0 {
		return
	}
	cctx, cancel := sub.cmdCtx(ctx)
	defer cancel()
	err := sub.s.client.XClaimJustID(cctx, &redis.XClaimArgs{
		Stream: sub.stream, Group: sub.group, Consumer: sub.consumer, MinIdle: third, Messages: ids,
	}).Err()
	if err != nil && ctx.Err() == nil && !isNoGroup(err) {
		sub.log.Warn("redis: renewing held entries failed", "entries", len(ids), "err", err)
	}
}

// claim takes over entries pending longer than MinIdle on any consumer of the group with
// XAUTOCLAIM, walking the whole pending list, and delivers them. Pending ids whose entries were
// trimmed away are reported as lost (Redis 7 names them and drops them from the list).
func (sub *subscription) claim(ctx context.Context) {
	cursor := "0-0"
	for range 1000 { // bounded per tick; the next tick continues
		cctx, cancel := sub.cmdCtx(ctx)
		res, err := sub.s.client.Do(cctx, "XAUTOCLAIM", sub.stream, sub.group, sub.consumer,
			sub.cfg.Consumer.MinIdle.Milliseconds(), cursor, "COUNT", sub.cfg.Consumer.ClaimBatch).Result()
		cancel()
		if err != nil {
			if ctx.Err() == nil && !isNoGroup(err) {
				sub.log.Warn("redis: XAUTOCLAIM failed", "err", err)
			}
			return
		}
		next, msgs, deleted, err := parseAutoClaim(res)
		if err != nil {
			sub.log.Error("redis: cannot read XAUTOCLAIM reply", "err", err)
			return
		}
		var fresh []redis.XMessage
		for _, m := range msgs {
			if m.Values == nil {
				deleted = append(deleted, m.ID) // Redis 6.2 returns trimmed entries as nil
				continue
			}
			fresh = append(fresh, m)
		}
		if len(deleted) > 0 {
			sub.reportGone(deleted)
		}
		if batch, _ := sub.entries(fresh); len(batch) > 0 { // entries leaves out the ids held here already
			sub.s.n.claimed.Add(uint64(len(batch)))
			sub.log.Info("redis: claimed idle pending entries", "entries", len(batch), "first_id", batch[0].id)
			select {
			case sub.raw <- batch:
			case <-ctx.Done():
				return
			}
		}
		if next == "0-0" || next == "0" {
			return
		}
		cursor = next
	}
}

// parseAutoClaim reads XAUTOCLAIM's reply: the next cursor, the claimed entries, and (Redis 7)
// the ids that were pending but are no longer in the stream.
func parseAutoClaim(res any) (next string, msgs []redis.XMessage, deleted []string, err error) {
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 {
		return "", nil, nil, fmt.Errorf("unexpected XAUTOCLAIM reply %T", res)
	}
	next = fieldString(arr[0])
	entries, _ := arr[1].([]any)
	for _, e := range entries {
		pair, ok := e.([]any)
		if !ok || len(pair) < 2 {
			continue
		}
		m := redis.XMessage{ID: fieldString(pair[0])}
		switch kv := pair[1].(type) {
		case []any:
			m.Values = make(map[string]any, len(kv)/2)
			for i := 0; i+1 < len(kv); i += 2 {
				m.Values[fieldString(kv[i])] = fieldString(kv[i+1])
			}
		case map[any]any:
			m.Values = make(map[string]any, len(kv))
			for k, v := range kv {
				m.Values[fieldString(k)] = fieldString(v)
			}
		}
		msgs = append(msgs, m)
	}
	if len(arr) >= 3 {
		if ids, ok := arr[2].([]any); ok {
			for _, id := range ids {
				deleted = append(deleted, fieldString(id))
			}
		}
	}
	return next, msgs, deleted, nil
}

// reapScript deletes, in one atomic step, the consumers of a group that have been idle for at
// least ARGV[2] ms and have no pending entries, except ARGV[3] (the caller). Checking and
// deleting separately would race with a consumer that comes back and reads in between, and
// XGROUP DELCONSUMER drops a consumer's pending entries with it: they would never be
// delivered again (the loss watermill-redisstream issue #24 describes).
var reapScript = redis.NewScript(`
local removed = {}
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return removed end
for _, c in ipairs(consumers) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i+1]
    elseif c[i] == 'pending' then pending = c[i+1]
    elseif c[i] == 'idle' then idle = c[i+1] end
  end
  if name ~= ARGV[3] and pending == 0 and idle ~= nil and idle >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    table.insert(removed, name)
  end
end
return removed
`)

// reapConsumers removes consumers idle longer than ConsumerTimeout with nothing pending, so that
// names of instances that are gone do not pile up in the group.
func (sub *subscription) reapConsumers(ctx context.Context) {
	if sub.cfg.Consumer.ConsumerTimeout <= 0 {
		return
	}
	cctx, cancel := sub.cmdCtx(ctx)
	defer cancel()
	res, err := reapScript.Run(cctx, sub.s.client, []string{sub.stream},
		sub.group, sub.cfg.Consumer.ConsumerTimeout.Milliseconds(), sub.consumer).StringSlice()
	if err != nil {
		if ctx.Err() == nil {
			sub.log.Warn("redis: removing idle consumers failed", "err", err)
		}
		return
	}
	if len(res) > 0 {
		sub.s.n.reaped.Add(uint64(len(res)))
		sub.log.Info("redis: removed idle consumers without pending entries", "consumers", res)
	}
}
