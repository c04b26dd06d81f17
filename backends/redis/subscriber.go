package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// ErrDataLoss is wrapped by the error of every DataLoss report.
var ErrDataLoss = errors.New("redis lost stream data")

// ErrSubscriberClosed is returned by Subscribe after Close. It wraps driver.ErrClosed.
var ErrSubscriberClosed = fmt.Errorf("redis subscriber %w", driver.ErrClosed)

// DataLoss reports entries that Redis no longer has for a consumer group: the group vanished
// (the server restarted without persistence, FLUSHALL, the stream key was deleted or evicted)
// or pending entries were trimmed or deleted from the stream before anyone acked them.
type DataLoss struct {
	Stream, Group, Consumer string
	// Err says what happened; it wraps ErrDataLoss.
	Err error
	// Lost is how many entries are known to be lost: for a vanished group, the entries the
	// group had not read when its lag was last observed, less those this consumer read since.
	// With a single consumer per group that is a lower bound (entries added after the
	// observation are not counted); with several it is an estimate, since the others' reads
	// since the observation are not seen. For trimmed pending entries, their number.
	Lost int64
	// LostKnown is false when Redis could not tell the lag (before Redis 7, or after XDEL).
	LostKnown bool
	// ObservedAt is when Lost was observed.
	ObservedAt time.Time
	// IDs are the entry ids lost, when Redis names them (trimmed pending entries).
	IDs []string
}

// Stats counts what a Subscriber did since it was created, over all its subscriptions.
type Stats struct {
	Read            uint64 // entries read with XREADGROUP, including this consumer's own pending ones
	Claimed         uint64 // entries claimed from idle consumers with XAUTOCLAIM
	Delivered       uint64 // messages handed out, redeliveries after a nack included
	Acked           uint64 // entries acked in Redis (XACK)
	Nacked          uint64 // nacks received
	Invalid         uint64 // entries delivered with bus.HeaderInvalidReason
	GroupsRecreated uint64 // vanished consumer groups recreated
	LostEntries     uint64 // entries reported lost in DataLoss reports (a lower bound)
	LostUnknown     uint64 // DataLoss reports whose number of lost entries Redis could not tell
	ConsumersReaped uint64 // idle consumers without pending entries removed from groups
	AckErrors       uint64 // XACK calls that failed (retried until DrainTimeout on Close)
	Released        uint64 // unacked entries made claimable by others when a subscription ended
}

type counters struct {
	read, claimed, delivered, acked, nacked, invalid, recreated, lost, lostUnknown, reaped, ackErrors, released atomic.Uint64
}

// Subscriber reads Redis streams through a consumer group. It implements Watermill's
// message.Subscriber and message.SubscribeInitializer; see the package documentation for what
// it guarantees.
type Subscriber struct {
	client  redis.UniversalClient
	cfg     Config
	group   string
	startID string
	logger  *slog.Logger

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	closeDone chan struct{} // closed when the first Close has returned
	subs      sync.WaitGroup
	active    map[*subscription]struct{}
	// temporary marks the group as throwaway (driver.Options.TemporaryGroup): Close destroys it
	// on every stream in streams, where it was created or found.
	temporary bool
	streams   map[string]struct{}

	n counters

	versionOnce sync.Once
	reportsLag  bool // the server is Redis 7 or newer, whose XINFO GROUPS reports the lag
}

// NewSubscriber returns a subscriber on client reading in cfg.ConsumerGroup. cfg must be valid
// (see Config.Validate). The client stays the caller's: Close does not close it.
func NewSubscriber(client redis.UniversalClient, cfg Config, logger *slog.Logger) (*Subscriber, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start, _ := startID(cfg.Consumer.StartFrom)
	if logger == nil {
		logger = slog.Default()
	}
	return &Subscriber{
		client:  client,
		cfg:     cfg,
		group:   cfg.ConsumerGroup,
		startID: start,
		logger:  logger,
		closing: make(chan struct{}), closeDone: make(chan struct{}),
		active:  map[*subscription]struct{}{},
		streams: map[string]struct{}{},
	}, nil
}

// Stats returns the subscriber's counters.
func (s *Subscriber) Stats() Stats {
	return Stats{
		Read: s.n.read.Load(), Claimed: s.n.claimed.Load(), Delivered: s.n.delivered.Load(),
		Acked: s.n.acked.Load(), Nacked: s.n.nacked.Load(), Invalid: s.n.invalid.Load(),
		GroupsRecreated: s.n.recreated.Load(), LostEntries: s.n.lost.Load(), LostUnknown: s.n.lostUnknown.Load(),
		ConsumersReaped: s.n.reaped.Load(), AckErrors: s.n.ackErrors.Load(), Released: s.n.released.Load(),
	}
}

// Lag is a subscription's consumer group lag as last observed (XINFO GROUPS, every
// ClaimInterval): how many entries of the stream the group has not read yet.
type Lag struct {
	Stream, Group, Consumer string
	// Entries is the lag, less the entries this consumer read since it was observed; valid
	// only when Known (Redis 7 reports it unless entries were deleted with XDEL in between).
	Entries    int64
	Known      bool
	ObservedAt time.Time
}

// Lags returns the last observed lag of every running subscription.
func (s *Subscriber) Lags() []Lag {
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.active))
	for sub := range s.active {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	out := make([]Lag, 0, len(subs))
	for _, sub := range subs {
		sub.lagMu.Lock()
		out = append(out, Lag{Stream: sub.stream, Group: sub.group, Consumer: sub.consumer,
			Entries: sub.lag, Known: sub.lagKnown, ObservedAt: sub.lagObserved})
		sub.lagMu.Unlock()
	}
	return out
}

// SubscribeInitialize creates the consumer group on topic (and the stream, if missing) at
// StartFrom, so that entries published before the first Subscribe are read by the group.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+s.cfg.ReadTimeout)
	defer cancel()
	return s.ensureGroup(ctx, topic)
}

func (s *Subscriber) ensureGroup(ctx context.Context, stream string) error {
	_, err := s.createGroup(ctx, stream, s.startID)
	if err == nil {
		s.mu.Lock()
		s.streams[stream] = struct{}{}
		s.mu.Unlock()
	}
	return err
}

// createGroup creates the group at id, with the stream if missing; created is false when the
// group already existed.
func (s *Subscriber) createGroup(ctx context.Context, stream, id string) (created bool, err error) {
	err = s.client.XGroupCreateMkStream(ctx, stream, s.group, id).Err()
	switch {
	case err == nil:
		return true, nil
	case redis.HasErrorPrefix(err, "BUSYGROUP"):
		return false, nil
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return false, fmt.Errorf("topic %s: the Redis key holds something other than a stream", stream)
	}
	return false, classify(fmt.Sprintf("create consumer group %s on stream %s", s.group, stream), err)
}

// Subscribe reads topic (a stream key) in the consumer group. The channel is closed when ctx is
// cancelled or the subscriber is closed, after messages already handed out were acked or nacked
// (or DrainTimeout passed) and their acks flushed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, fmt.Errorf("subscribe: topic (stream key) is empty: %w", driver.ErrInvalidEvent)
	}
	if s.isClosed() {
		return nil, ErrSubscriberClosed
	}
	initCtx, cancelInit := context.WithTimeout(ctx, s.cfg.WriteTimeout+s.cfg.ReadTimeout)
	s.versionOnce.Do(func() {
		info, err := s.client.Info(initCtx, "server").Result()
		s.reportsLag = err == nil && atLeast(infoField(info, "redis_version"), 7, 0)
	})
	err := s.ensureGroup(initCtx, topic)
	cancelInit()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSubscriberClosed
	}
	consumer, release := consumerNames.acquire(topic, s.group, s.cfg.Consumer.consumerName())
	sub := newSubscription(s, topic, consumer)
	s.active[sub] = struct{}{}
	s.subs.Add(1)
	go func() {
		defer s.subs.Done()
		defer release()
		defer func() {
			s.mu.Lock()
			delete(s.active, sub)
			s.mu.Unlock()
		}()
		sub.run(ctx)
	}()
	return sub.out, nil
}

func (s *Subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close ends every subscription, waits up to DrainTimeout for messages already handed out to be
// acked or nacked (their contexts stay alive meanwhile), flushes their acks to Redis, and makes
// the entries read but not acked claimable by the group's other consumers at once. A temporary group is then
// destroyed on every stream it read, and a stream left empty and without groups is deleted
// (the stream a read of a missing topic created). It does not close the Redis client. Safe to
// call more than once.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.closeDone // a later call returns once the first has drained, as Bus.Close relies on
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	defer close(s.closeDone)
	s.subs.Wait()
	if s.temporary {
		s.destroyGroup()
	}
	return nil
}

// destroyScript destroys group ARGV[1] on stream KEYS[1] and deletes the stream if that leaves
// it empty and without groups, in one step so that an entry added meanwhile is never deleted.
var destroyScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' then return 0 end
redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1])
if redis.call('XLEN', KEYS[1]) == 0 and #redis.call('XINFO', 'GROUPS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  return 2
end
return 1
`)

// destroyGroup removes the temporary group from every stream it was created on. A failure is
// logged: the group then stays behind, as it would without this clean-up.
func (s *Subscriber) destroyGroup() {
	s.mu.Lock()
	streams := make([]string, 0, len(s.streams))
	for st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, st := range streams {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout+s.cfg.ReadTimeout)
		err := destroyScript.Run(ctx, s.client, []string{st}, s.group).Err()
		cancel()
		if err != nil {
			s.logger.Warn("redis: cannot remove the temporary consumer group; it stays on the stream", "stream", st, "group", s.group, "err", err)
		}
	}
}

// report logs a data loss as an error, counts it and hands it to the OnDataLoss hook.
func (s *Subscriber) report(d DataLoss) {
	attrs := []any{"stream", d.Stream, "group", d.Group, "consumer", d.Consumer, "err", d.Err}
	if d.LostKnown {
		s.n.lost.Add(uint64(d.Lost))
		attrs = append(attrs, "lost_entries", d.Lost)
	} else {
		s.n.lostUnknown.Add(1)
		attrs = append(attrs, "lost_entries", "unknown")
	}
	if !d.ObservedAt.IsZero() {
		attrs = append(attrs, "observed_at", d.ObservedAt)
	}
	if len(d.IDs) > 0 {
		attrs = append(attrs, "ids", d.IDs)
	}
	s.logger.Error("redis stream data lost", attrs...)
	if s.cfg.OnDataLoss != nil {
		s.cfg.OnDataLoss(d)
	}
}

// consumerNames hands out consumer names per stream and group within the process, so that two
// subscriptions never share a name (and a pending entries list), while names stay the same
// from one run of the program to the next.
var consumerNames = &nameRegistry{used: map[string]map[int]bool{}}

type nameRegistry struct {
	mu   sync.Mutex
	used map[string]map[int]bool
}

func (r *nameRegistry) acquire(stream, group, base string) (string, func()) {
	key := stream + "\x00" + group + "\x00" + base
	r.mu.Lock()
	defer r.mu.Unlock()
	taken := r.used[key]
	if taken == nil {
		taken = map[int]bool{}
		r.used[key] = taken
	}
	n := 1
	for taken[n] {
		n++
	}
	taken[n] = true
	name := base
	if n > 1 {
		name = base + "-" + strconv.Itoa(n)
	}
	return name, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(taken, n)
		if len(taken) == 0 {
			delete(r.used, key)
		}
	}
}
