package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// crashChildEnv carries "addr topic group max_in_flight commit_interval" to the consumer child
// process of TestKilledConsumerReplaysOnlyTheCommitInterval.
const crashChildEnv = "EVENTBUS_KAFKA_CRASH_CHILD"

func TestMain(m *testing.M) { brokertest.ChildMain(m, crashChildEnv, runCrashChild) }

// runCrashChild consumes the topic, spending 1ms on each record, and writes each record's
// offset before acking it, unbuffered, so that the parent sees every handled record even after
// SIGKILL.
func runCrashChild(spec string) int {
	var addr, topic, group, every string
	var window int
	if _, err := fmt.Sscan(spec, &addr, &topic, &group, &window, &every); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	interval, err := time.ParseDuration(every)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	cfg := brokertest.KafkaConfig(addr, group, window, 1)
	cfg.Consumer.CommitInterval = interval
	b, err := bus.OpenConfig(context.Background(), kafka.Name, cfg, bus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	msgs, err := b.Subscriber.Subscribe(context.Background(), topic)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	for m := range msgs {
		time.Sleep(time.Millisecond) // the handler's work
		pos, _ := bus.PositionOf(m)
		if _, err := os.Stdout.WriteString(pos.Coordinates + "\n"); err != nil {
			return 1
		}
		m.Ack()
	}
	return 0
}

// startCrashChild runs a consumer child process and sends the offset of each record it
// handles to offsets. The returned channel is closed once the child's output has been read to
// its end (the child exited).
func startCrashChild(t *testing.T, spec string, offsets chan<- int64) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	return brokertest.StartChild(t, crashChildEnv, spec, func(line string) {
		if _, off, err := kafka.ParseCoordinates(line); err == nil {
			offsets <- off
		}
	})
}

// TestKilledConsumerReplaysOnlyTheCommitInterval kills a consumer with SIGKILL (in a child
// process: nothing is flushed or committed on the way out) after 1,234 of 2,000 records and
// starts another in the same group, on both subscribers. Nothing is lost, and the records
// handled twice are those after the last commit: with commit_interval 100ms about a tenth of a
// second of handling, where Sarama's default of 1s replayed up to a second. The figures are
// logged (go test -v); set EVENTBUS_CRASH_COMMIT_INTERVAL=1s to measure the old behaviour.
func TestKilledConsumerReplaysOnlyTheCommitInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("starts consumer processes; run without -short")
	}
	interval := kafka.DefaultConfig().Consumer.CommitInterval
	if v := os.Getenv("EVENTBUS_CRASH_COMMIT_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err)
		interval = d
	}
	const total, killAt = 2000, 1234 // killAt: not a multiple of any batch size
	for _, mode := range []struct {
		name   string
		window int
	}{{"watermill", 0}, {"pipelined", 32}} {
		t.Run(mode.name, func(t *testing.T) {
			addr := brokertest.StartKafka(t, 1)
			topic, group := "crash-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
			b, err := bus.OpenConfig(context.Background(), kafka.Name, brokertest.KafkaConfig(addr, group, 0, 1), bus.WithLogger(brokertest.Logger()))
			require.NoError(t, err)
			defer b.Close()
			batch := make([]*message.Message, 0, total)
			for i := range total {
				batch = append(batch, message.NewMessage(strconv.Itoa(i), []byte(strconv.Itoa(i))))
			}
			require.NoError(t, b.Publisher.Publish(topic, batch...))

			spec := strings.Join([]string{addr, topic, group, strconv.Itoa(mode.window), interval.String()}, " ")
			offsets := make(chan int64, 2*total)
			first, firstRead := startCrashChild(t, spec, offsets)
			var firstRun []int64
			for len(firstRun) < killAt {
				select {
				case o := <-offsets:
					firstRun = append(firstRun, o)
				case <-time.After(time.Minute):
					t.Fatalf("first consumer handled only %d records", len(firstRun))
				}
			}
			require.NoError(t, first.Process.Signal(syscall.SIGKILL))
			<-firstRead // every line written before the kill
			_ = first.Wait()
			for drained := false; !drained; {
				select {
				case o := <-offsets:
					firstRun = append(firstRun, o)
				default:
					drained = true
				}
			}
			committed := brokertest.KafkaCommittedOffset(t, addr, group, topic)

			startCrashChild(t, spec, offsets)
			handled := map[int64]int{}
			for _, o := range firstRun {
				handled[o]++
			}
			dups := 0
			for len(handled) < total {
				select {
				case o := <-offsets:
					if handled[o] > 0 {
						dups++
						assert.GreaterOrEqual(t, o, committed, "offset %d handled again though committed", o)
					}
					handled[o]++
				case <-time.After(time.Minute):
					t.Fatalf("%d of %d records handled after the restart", len(handled), total)
				}
			}
			assert.Less(t, dups, len(firstRun), "everything handled before the kill was handled again")
			t.Logf("commit_interval %s, %s subscriber: %d records handled before SIGKILL, committed offset %d, %d handled again after the restart",
				interval, mode.name, len(firstRun), committed, dups)
		})
	}
}

// A clean close commits what was handled, whatever commit_interval says: with an interval of
// an hour, the offsets of the records acked before Close are committed by Close, so a restart
// after a deploy handles nothing twice. Only the pipelined subscriber: on Watermill's, Close
// committed 19 of 20 acked records in one of two runs (it marks an offset in a goroutine of
// its own after the ack, and gives up marking once closing or the session has ended), so there
// the last records acked before Close may be handled again after the restart.
func TestCloseCommitsHandledOffsets(t *testing.T) {
	for _, window := range []int{8} {
		t.Run(fmt.Sprintf("max_in_flight=%d", window), func(t *testing.T) {
			addr := brokertest.StartKafka(t, 1)
			topic, group := "close-"+watermill.NewShortUUID(), "g-"+watermill.NewShortUUID()
			cfg := brokertest.KafkaConfig(addr, group, window, 1)
			cfg.Consumer.CommitInterval = time.Hour
			b, err := bus.OpenConfig(context.Background(), kafka.Name, cfg, bus.WithLogger(brokertest.Logger()))
			require.NoError(t, err)
			defer b.Close()
			const n = 20
			for i := range n {
				require.NoError(t, b.Publisher.Publish(topic, message.NewMessage(strconv.Itoa(i), nil)))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			msgs, err := b.Subscriber.Subscribe(ctx, topic)
			require.NoError(t, err)
			for range n {
				select {
				case m := <-msgs:
					m.Ack()
				case <-ctx.Done():
					t.Fatal("not every record arrived")
				}
			}
			require.NoError(t, b.Close())
			assert.Equal(t, int64(n), brokertest.KafkaCommittedOffset(t, addr, group, topic))
		})
	}
}
