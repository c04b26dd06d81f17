package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

const (
	orderKeys       = 50
	orderPerKey     = 200
	orderPartitions = 4
	orderWindow     = 64
)

// publishKeyed publishes keys × perKey messages, interleaving keys, with "key seq" payloads.
func publishKeyed(t testing.TB, b *bus.Bus, topic string, keys, perKey int) {
	t.Helper()
	var batch []*message.Message
	for seq := range perKey {
		for k := range keys {
			m, err := bus.NewMessage(bus.Event{Type: "t", Source: "s", Key: fmt.Sprintf("k%02d", k), Data: []byte(strconv.Itoa(seq))}, nil)
			require.NoError(t, err)
			batch = append(batch, m)
			if len(batch) == 500 {
				require.NoError(t, b.Publisher.Publish(topic, batch...))
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		require.NoError(t, b.Publisher.Publish(topic, batch...))
	}
}

// flaky is the handler of the ordering tests: random latency up to 2ms and a transient failure
// on 5% of attempts.
func flaky(m *message.Message) error {
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	if rand.IntN(20) == 0 {
		return fmt.Errorf("transient failure on attempt %d", middleware.Attempt(m))
	}
	return nil
}

func orderingConfig(concurrency int) router.Config {
	c := fastConfig()
	c.Ordering.Concurrency = concurrency
	c.Retry.MaxAttempts = 20
	c.Retry.InitialInterval = time.Millisecond
	c.Retry.MaxInterval = 5 * time.Millisecond
	return c
}

// TestPerKeyOrderWithParallelism: 50 keys × 200 messages over 4 partitions, concurrency 16,
// random latency and transient failures: every message is handled exactly once, each key's in
// order, different keys in parallel, and every partition's offset is committed to its end.
func TestPerKeyOrderWithParallelism(t *testing.T) {
	addr := startBroker(t, orderPartitions)
	topic, group := "ordered-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, orderWindow, orderPartitions))
	publishKeyed(t, b, topic, orderKeys, orderPerKey)

	r, err := router.New(b, orderingConfig(16))
	require.NoError(t, err)
	var (
		mu        sync.Mutex
		next      = map[string]int{}
		busy      = map[string]bool{}
		problems  []string
		running   atomic.Int32
		maxSeen   atomic.Int32
		remaining atomic.Int32
		done      = make(chan struct{})
	)
	remaining.Store(orderKeys * orderPerKey)
	r.AddConsumerHandler("ordered", topic, b.Subscriber, func(m *message.Message) error {
		n := running.Add(1)
		defer running.Add(-1)
		for cur := maxSeen.Load(); n > cur && !maxSeen.CompareAndSwap(cur, n); cur = maxSeen.Load() {
		}
		key := m.Metadata.Get(bus.HeaderKey)
		seq, _ := strconv.Atoi(string(m.Payload))
		mu.Lock()
		if busy[key] {
			problems = append(problems, fmt.Sprintf("key %s: seq %d started while another of its messages ran", key, seq))
		}
		if seq != next[key] {
			problems = append(problems, fmt.Sprintf("key %s: got seq %d, want %d", key, seq, next[key]))
		}
		busy[key] = true
		mu.Unlock()
		err := flaky(m)
		mu.Lock()
		busy[key] = false
		if err == nil {
			next[key] = seq + 1
		}
		mu.Unlock()
		if err == nil && remaining.Add(-1) == 0 {
			close(done)
		}
		return err
	})
	runRouter(t, r)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%d messages not handled", remaining.Load())
	}
	mu.Lock()
	assert.Empty(t, problems)
	for k := range orderKeys {
		assert.Equal(t, orderPerKey, next[fmt.Sprintf("k%02d", k)], "key k%02d", k)
	}
	mu.Unlock()
	assert.Greater(t, maxSeen.Load(), int32(1), "different keys never ran in parallel")
	assert.LessOrEqual(t, maxSeen.Load(), int32(16), "more handlers at once than the concurrency")

	// At-least-once bookkeeping: each partition's committed offset reaches its end.
	ends := partitionEnds(t, addr, topic)
	require.Eventually(t, func() bool {
		got, err := brokertest.KafkaCommitted(addr, group, topic, orderPartitions)
		if err != nil {
			return false
		}
		for p, end := range ends {
			if got[p] != end {
				return false
			}
		}
		return true
	}, 15*time.Second, 100*time.Millisecond, "committed offsets never reached the ends %v", ends)
}

// TestParkHoldsLaterMessagesOfThePoisonedKey: under the park policy, once a key's message is
// poisoned its later messages go to the poison queue behind it, unhandled, while other keys go
// on; a redriven message of the key unparks it.
func TestParkHoldsLaterMessagesOfThePoisonedKey(t *testing.T) {
	addr := startBroker(t, 1)
	topic, group := "park-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, 16, 1))
	cfg := orderingConfig(4)
	cfg.Poison.OnPoisoned = middleware.Park
	r, err := router.New(b, cfg)
	require.NoError(t, err)
	seen := newCalls()
	r.AddConsumerHandler("h", topic, b.Subscriber, func(m *message.Message) error {
		seen.add(m)
		if m.UUID == "a-1" && m.Metadata.Get(middleware.HeaderRedriveCount) == "" {
			return middleware.Permanent(errors.New("bad a-1"))
		}
		return nil
	})
	runRouter(t, r)
	ev := func(id, key string) bus.Event { return bus.Event{ID: id, Type: "t", Source: "s", Key: key} }
	require.NoError(t, b.Publish(context.Background(), topic, ev("a-1", "a"), ev("b-1", "b"), ev("a-2", "a"), ev("b-2", "b"), ev("a-3", "a")))

	poisoned := readTopic(t, addr, topic+".poison", 3)
	for i, want := range []struct {
		id     string
		reason middleware.Reason
	}{{"a-1", middleware.ReasonPermanent}, {"a-2", middleware.ReasonParked}, {"a-3", middleware.ReasonParked}} {
		p, err := middleware.ParseProvenance(poisoned[i])
		require.NoError(t, err)
		assert.Equal(t, want.id, poisoned[i].UUID, "poison queue order")
		assert.Equal(t, want.reason, p.Reason, want.id)
		if want.reason == middleware.ReasonParked {
			assert.Equal(t, "a-1", p.ParkedBehind)
			assert.Equal(t, 0, p.Attempts)
		}
	}
	seen.wait(t, 3) // a-1, b-1, b-2
	for _, m := range seen.snapshot() {
		assert.NotContains(t, []string{"a-2", "a-3"}, m.UUID, "a parked message reached the handler")
	}

	// The operator redrives a-1 (what `eventbus dlq redrive` sends): the key is unparked.
	redriven := poisoned[0].Copy()
	for k := range redriven.Metadata {
		if strings.HasPrefix(k, "eventbus_poison_") {
			delete(redriven.Metadata, k)
		}
	}
	redriven.Metadata.Set(middleware.HeaderRedriveCount, "1")
	require.NoError(t, b.Publisher.Publish(topic, redriven))
	require.NoError(t, b.Publish(context.Background(), topic, ev("a-4", "a")))
	seen.wait(t, 5)
	got := seen.snapshot()
	assert.Equal(t, "a-1", got[3].UUID)
	assert.Equal(t, "a-4", got[4].UUID)
}

// TestParkStaysWhileRedrivenMessageFailsAgain: the operator redrives a key's poisoned message
// and the messages parked behind it, in order; the poisoned one fails again. The later ones
// must be parked again, not handled while the earlier one is still broken. Once it is fixed, a
// second redrive handles all three in order.
func TestParkStaysWhileRedrivenMessageFailsAgain(t *testing.T) {
	addr := startBroker(t, 1)
	topic, group := "repark-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, 16, 1))
	cfg := orderingConfig(4)
	cfg.Poison.OnPoisoned = middleware.Park
	r, err := router.New(b, cfg)
	require.NoError(t, err)
	var broken atomic.Bool
	broken.Store(true)
	seen := newCalls()
	r.AddConsumerHandler("h", topic, b.Subscriber, func(m *message.Message) error {
		seen.add(m)
		if m.UUID == "a-1" && broken.Load() {
			return middleware.Permanent(errors.New("bad a-1"))
		}
		return nil
	})
	runRouter(t, r)
	ev := func(id string) bus.Event { return bus.Event{ID: id, Type: "t", Source: "s", Key: "a"} }
	require.NoError(t, b.Publish(context.Background(), topic, ev("a-1"), ev("a-2"), ev("a-3")))
	poisoned := readTopic(t, addr, topic+".poison", 3)
	seen.wait(t, 1)

	// First redrive: a-1 fails again; a-2 and a-3 go back behind it.
	redrive(t, b, topic, poisoned)
	again := readTopic(t, addr, topic+".poison", 6)[3:]
	for i, id := range []string{"a-1", "a-2", "a-3"} {
		p, err := middleware.ParseProvenance(again[i])
		require.NoError(t, err)
		assert.Equal(t, id, again[i].UUID, "poison queue order")
		if i > 0 {
			assert.Equal(t, middleware.ReasonParked, p.Reason, "%s after the redriven a-1 failed again", id)
			assert.Equal(t, "a-1", p.ParkedBehind)
		}
	}
	var handled []string
	for _, m := range seen.snapshot() {
		handled = append(handled, m.UUID)
	}
	assert.Equal(t, []string{"a-1", "a-1"}, handled, "only a-1 reaches the handler while it fails")

	// Fixed: the second redrive handles all three, in order.
	broken.Store(false)
	redrive(t, b, topic, again)
	seen.wait(t, 5)
	handled = handled[:0]
	for _, m := range seen.snapshot()[2:] {
		handled = append(handled, m.UUID)
	}
	assert.Equal(t, []string{"a-1", "a-2", "a-3"}, handled)
}

// redrive sends poison-queue messages back to topic as `eventbus dlq redrive` does.
func redrive(t testing.TB, b *bus.Bus, topic string, poisoned []*message.Message) {
	t.Helper()
	for _, pm := range poisoned {
		p, err := middleware.ParseProvenance(pm)
		require.NoError(t, err)
		rm := pm.Copy()
		for k := range rm.Metadata {
			if strings.HasPrefix(k, "eventbus_poison_") || k == middleware.HeaderParkedBehind {
				delete(rm.Metadata, k)
			}
		}
		rm.Metadata.Set(middleware.HeaderRedriveCount, strconv.Itoa(p.RedriveCount+1))
		require.NoError(t, b.Publisher.Publish(topic, rm))
	}
}

func partitionEnds(t testing.TB, addr, topic string) map[int32]int64 {
	t.Helper()
	client, err := sarama.NewClient([]string{addr}, sarama.NewConfig())
	require.NoError(t, err)
	defer client.Close()
	ends := map[int32]int64{}
	parts, err := client.Partitions(topic)
	require.NoError(t, err)
	for _, p := range parts {
		ends[p], err = client.GetOffset(topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
	}
	return ends
}

// childEnv carries "addr topic group" to the consumer child process of TestKillAndRestart.
const childEnv = "EVENTBUS_ORDERING_CHILD"

func TestMain(m *testing.M) { brokertest.ChildMain(m, childEnv, runChild) }

// runChild is the consumer that TestKillAndRestart kills: it handles the topic with
// concurrency 16 and writes "key seq partition offset" for each message it handles, before
// returning (and so before the ack), unbuffered, so that the parent sees every handled message
// even after SIGKILL.
func runChild(spec string) int {
	var addr, topic, group string
	if _, err := fmt.Sscan(spec, &addr, &topic, &group); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	b, err := bus.OpenConfig(context.Background(), "kafka", kafkaConfig(addr, group, orderWindow, orderPartitions), bus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	r, err := router.New(b, orderingConfig(16))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	var out sync.Mutex
	r.AddConsumerHandler("ordered", topic, b.Subscriber, func(m *message.Message) error {
		if err := flaky(m); err != nil {
			return err
		}
		pos, _ := bus.PositionOf(m)
		partition, offset, err := kafka.ParseCoordinates(pos.Coordinates)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s %d %d\n", m.Metadata.Get(bus.HeaderKey), m.Payload, partition, offset)
		out.Lock()
		defer out.Unlock()
		_, err = os.Stdout.WriteString(line)
		return err
	})
	if err := r.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

type handledLine struct {
	key       string
	seq       int
	partition int32
	offset    int64
	run       int
}

// startChild starts a consumer child process and sends each line it writes to lines; the
// returned channel is closed once its output has been read to EOF (the child exited).
func startChild(t *testing.T, run int, addr, topic, group string, lines chan<- handledLine) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	return brokertest.StartChild(t, childEnv, strings.Join([]string{addr, topic, group}, " "), func(text string) {
		var l handledLine
		if _, err := fmt.Sscan(text, &l.key, &l.seq, &l.partition, &l.offset); err == nil {
			l.run = run
			lines <- l
		}
	})
}

// TestKillAndRestart kills a consumer (SIGKILL, in a child process, so nothing is flushed or
// committed on the way out) in the middle of 10,000 keyed messages and starts another in the
// same group. Nothing is lost; every message handled twice lies at or after the offset the
// group had committed when the first consumer died (the uncommitted window); and each run
// handles each key's messages in order.
func TestKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two consumer processes; run without -short")
	}
	addr := startBroker(t, orderPartitions)
	topic, group := "killed-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
	b := openBus(t, kafkaConfig(addr, group, orderWindow, orderPartitions))
	publishKeyed(t, b, topic, orderKeys, orderPerKey)
	total := orderKeys * orderPerKey

	lines := make(chan handledLine, total*2)
	first, firstEOF := startChild(t, 1, addr, topic, group, lines)
	var got []handledLine
	for len(got) < total/3 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-time.After(time.Minute):
			t.Fatalf("first consumer handled only %d messages", len(got))
		}
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	<-firstEOF // every line the child wrote before the kill has been read (exec: read, then Wait)
	_ = first.Wait()
	for drained := false; !drained; {
		select {
		case l := <-lines:
			got = append(got, l)
		default:
			drained = true
		}
	}
	committedAtKill, err := brokertest.KafkaCommitted(addr, group, topic, orderPartitions)
	require.NoError(t, err)
	firstRun := len(got)
	t.Logf("first consumer handled %d messages before SIGKILL; committed offsets %v", firstRun, committedAtKill)

	_, _ = startChild(t, 2, addr, topic, group, lines)
	handled := map[[2]any]int{}
	for _, l := range got {
		handled[[2]any{l.key, l.seq}]++
	}
	for len(handled) < total {
		select {
		case l := <-lines:
			got = append(got, l)
			handled[[2]any{l.key, l.seq}]++
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d messages handled after the restart", len(handled), total)
		}
	}

	// Nothing lost: every (key, seq) was handled. Duplicates only from the uncommitted window.
	dups := 0
	firstSeen := map[[2]any]handledLine{}
	for _, l := range got {
		k := [2]any{l.key, l.seq}
		if prev, ok := firstSeen[k]; ok {
			dups++
			assert.GreaterOrEqual(t, l.offset, committedAtKill[l.partition],
				"%s seq %d (partition %d offset %d) handled again though its offset was committed", l.key, l.seq, l.partition, l.offset)
			assert.Equal(t, 1, prev.run, "handled twice within one run")
			continue
		}
		firstSeen[k] = l
	}
	// How many there are depends on where the kill fell: up to max_in_flight records per
	// partition beyond the marked offset, plus what was marked since Sarama's last auto-commit.
	t.Logf("%d duplicates after the restart, all at or after the committed offsets", dups)

	// Per-key order in each run: consecutive sequence numbers; the second run starts each key
	// no later than where the first left it.
	last := map[int]map[string]int{1: {}, 2: {}}
	for _, l := range got {
		prev, ok := last[l.run][l.key]
		switch {
		case ok && l.seq != prev+1:
			t.Errorf("run %d, key %s: seq %d after %d", l.run, l.key, l.seq, prev)
		case !ok && l.run == 1 && l.seq != 0:
			t.Errorf("run 1, key %s: started at seq %d", l.key, l.seq)
		case !ok && l.run == 2:
			if p1, ok1 := last[1][l.key]; (ok1 && l.seq > p1+1) || (!ok1 && l.seq != 0) {
				t.Errorf("run 2, key %s: started at seq %d, run 1 ended at %d (handled: %v)", l.key, l.seq, p1, ok1)
			}
		}
		last[l.run][l.key] = l.seq
	}
}

// BenchmarkOrderingSpeedup measures the per-key ordering's parallelism: 100 keys, a handler
// that takes 5ms, concurrency 1 against concurrency 16 on the same broker in the same run. It
// reports both rates and their ratio (speedup).
func BenchmarkOrderingSpeedup(b *testing.B) {
	const keys, perKey = 100, 4
	addr := startBroker(b, 1)
	rate := func(concurrency int) float64 {
		topic, group := "bench-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
		bb := openBus(b, kafkaConfig(addr, group, 512, 1))
		publishKeyed(b, bb, topic, keys, perKey)
		r, err := router.New(bb, orderingConfig(concurrency))
		require.NoError(b, err)
		var left atomic.Int32
		left.Store(keys * perKey)
		var start time.Time
		var once sync.Once
		done := make(chan struct{})
		r.AddConsumerHandler("bench", topic, bb.Subscriber, func(m *message.Message) error {
			once.Do(func() { start = time.Now() })
			time.Sleep(5 * time.Millisecond)
			if left.Add(-1) == 0 {
				close(done)
			}
			return nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = r.Run(ctx) }()
		<-done
		elapsed := time.Since(start)
		_ = r.Close()
		return float64(keys*perKey-1) / elapsed.Seconds()
	}
	var serial, parallel float64
	for b.Loop() {
		serial += rate(1)
		parallel += rate(16)
	}
	b.ReportMetric(serial/float64(b.N), "msgs/s@1")
	b.ReportMetric(parallel/float64(b.N), "msgs/s@16")
	b.ReportMetric(parallel/serial, "speedup")
}
