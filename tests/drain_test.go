package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/eventbus-go/eventbus/backends/kafka"
	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/router"
)

// drainChildEnv carries "config-file topic handle-duration" to the consumer child process of
// the drain tests.
const drainChildEnv = "EVENTBUS_DRAIN_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(drainChildEnv); spec != "" {
		os.Exit(runDrainChild(spec))
	}
	os.Exit(m.Run())
}

// runDrainChild is a consumer service as a service embeds the router: SIGTERM cancels Run's
// context (and restores the default handling, so a second signal kills the process), Run
// drains, the bus closes, exit 0. Its handler prints "start ID", takes the handle duration and
// prints "done ID" before returning (so before the ack), and "cancelled ID" if its context
// ends meanwhile; "stopping" when the first signal arrives. Output is unbuffered.
func runDrainChild(spec string) int {
	var path, topic, duration string
	if _, err := fmt.Sscan(spec, &path, &topic, &duration); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	handle, err := time.ParseDuration(duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, func() { stop(); fmt.Println("stopping") })
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := bus.Open(context.Background(), cfg, bus.WithLogger(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	r, err := router.FromConfig(b, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	r.AddConsumerHandler("drain", topic, b.Subscriber, func(m *message.Message) error {
		fmt.Println("start", m.UUID)
		t := time.NewTimer(handle)
		defer t.Stop()
		select {
		case <-t.C:
		case <-m.Context().Done():
			// Like many a handler, it finishes its work anyway (and is acked unless the
			// router or subscriber dropped the message meanwhile).
			fmt.Println("cancelled", m.UUID)
			<-t.C
		}
		fmt.Println("done", m.UUID)
		return nil
	})
	runErr := r.Run(ctx)
	if err := errors.Join(runErr, b.Close()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// drainChild is a running consumer child and what it printed.
type drainChild struct {
	cmd   *exec.Cmd
	lines chan string
	eof   chan struct{}
}

func startDrainChild(t *testing.T, cfgPath, topic string, handle time.Duration) *drainChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s", drainChildEnv, cfgPath, topic, handle))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &drainChild{cmd: cmd, lines: make(chan string, 1024), eof: make(chan struct{})}
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-c.eof; _ = cmd.Wait() })
	go func() {
		defer close(c.eof)
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c
}

// next returns the child's next line; "" once it has exited.
func (c *drainChild) next(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case l := <-c.lines:
		return l
	case <-time.After(within):
		t.Fatalf("the consumer child printed nothing for %s", within)
		return ""
	}
}

// wait reads the child's output to the end and returns its exit error.
func (c *drainChild) wait(t *testing.T, within time.Duration, each func(string)) error {
	t.Helper()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return c.cmd.Wait()
			}
			each(l)
		case <-time.After(within):
			t.Fatalf("the consumer child did not exit within %s", within)
		}
	}
}

type drainVariant struct {
	name string
	// yaml returns the config file, starting any broker it needs, and the router: section
	// suffix it wants.
	yaml func(t *testing.T, group string) string
}

// Every variant hands out several messages at once, so that several handlers are mid-way when
// the signal comes, and reads ahead (Redis read_batch, RabbitMQ prefetch, Kafka fetches).
var drainVariants = []drainVariant{
	{name: "kafka", yaml: func(t *testing.T, group string) string {
		// The default subscriber (max_in_flight 1): one record per partition at a time, four
		// partitions in parallel.
		return "backend: kafka\n" + brokertest.KafkaYAML(brokertest.StartKafka(t, 4)) +
			"  consumer_group: " + group + "\n  topics: {partitions: 4}\n" +
			"router: {close_timeout: 5s}\n"
	}},
	{name: "redis", yaml: func(t *testing.T, group string) string {
		brokertest.Redis(t)
		// The default min_idle (1m): entries left pending by the first child must reach the
		// second long before that.
		return "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n  consumer_group: " + group +
			"\n  consumer: {max_in_flight: 4, claim_interval: 500ms, drain_timeout: 5s}\n" +
			"router: {close_timeout: 5s, ordering: {concurrency: 4}}\n"
	}},
	{name: "rabbitmq", yaml: func(t *testing.T, group string) string {
		return "backend: rabbitmq\nrabbitmq:\n  vhost: " + brokertest.RabbitMQVhost(t) + "\n  consumer_group: " + group +
			"\n  consumer: {max_in_flight: 4, drain_timeout: 5s}\n" +
			"router: {close_timeout: 5s, ordering: {concurrency: 4}}\n"
	}},
}

func writeConfig(t *testing.T, doc string) (string, *config.Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eventbus.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	return path, cfg
}

// TestSIGTERMDrains stops a consumer process with SIGTERM in the middle of 50 messages that
// take 200ms each, then runs a second one in the same group: the first exits 0; no handler of
// the first saw its context cancelled; no message whose handler completed in the first is
// handled again by the second (its ack reached the broker during the drain); and every message
// is handled, promptly (Redis: the first's read-ahead entries are not left waiting min_idle).
func TestSIGTERMDrains(t *testing.T) {
	const total = 50
	for _, v := range drainVariants {
		t.Run(v.name, func(t *testing.T) {
			topic := "drain-" + watermill.NewShortUUID()
			if v.name == "redis" {
				topic = brokertest.RedisStream(t, "drain")
			}
			path, cfg := writeConfig(t, v.yaml(t, "g-"+watermill.NewShortUUID()))
			pub, err := bus.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
			require.NoError(t, err)
			defer pub.Close()
			// Declare the group's queue (RabbitMQ) or stream group before publishing.
			if si, ok := pub.Subscriber.(message.SubscribeInitializer); ok {
				require.NoError(t, si.SubscribeInitialize(topic))
			}
			events := make([]bus.Event, total)
			for i := range events {
				events[i] = bus.Event{ID: fmt.Sprintf("e-%02d", i), Type: "t", Source: "s"}
			}
			require.NoError(t, pub.Publish(context.Background(), topic, events...))

			first := startDrainChild(t, path, topic, 200*time.Millisecond)
			done1 := map[string]bool{}
			var cancelled []string
			record := func(l string) {
				f := strings.Fields(l)
				switch {
				case len(f) == 2 && f[0] == "done":
					done1[f[1]] = true
				case len(f) == 2 && f[0] == "cancelled":
					cancelled = append(cancelled, f[1])
				}
			}
			for len(done1) < 8 {
				record(first.next(t, 30*time.Second))
			}
			require.NoError(t, first.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, first.wait(t, 30*time.Second, record), "the first consumer exits 0 after the drain")
			assert.Empty(t, cancelled, "handlers' contexts were cancelled during the drain")
			require.Less(t, len(done1), total, "the first consumer handled everything before the signal: nothing was mid-stream")

			second := startDrainChild(t, path, topic, 200*time.Millisecond)
			var again []string
			done2 := map[string]bool{}
			for len(done1)+len(done2) < total {
				// Well under Redis's min_idle (1m), and the only bound on how long it takes.
				f := strings.Fields(second.next(t, 20*time.Second))
				if len(f) != 2 {
					continue
				}
				if f[0] == "start" && done1[f[1]] {
					again = append(again, f[1])
				}
				if f[0] == "done" && !done1[f[1]] {
					done2[f[1]] = true
				}
			}
			require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, second.wait(t, 30*time.Second, func(l string) {
				if f := strings.Fields(l); len(f) == 2 && f[0] == "start" && done1[f[1]] {
					again = append(again, f[1])
				}
			}))
			assert.Empty(t, again, "messages handled to completion by the first consumer were handled again")
			for _, ev := range events {
				assert.True(t, done1[ev.ID] || done2[ev.ID], "%s was never handled", ev.ID)
			}
			t.Logf("first consumer handled %d before exiting, second %d", len(done1), len(done2))
		})
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during the drain ends the process at once,
// without waiting for close_timeout (here 30s) or the handler (1m).
func TestSecondSignalExitsAtOnce(t *testing.T) {
	topic := brokertest.RedisStream(t, "drain")
	path, cfg := writeConfig(t, "backend: redis\nredis:\n  addrs: ["+brokertest.RedisAddr+"]\n  consumer_group: g-"+watermill.NewShortUUID()+
		"\n  consumer: {drain_timeout: 30s}\nrouter: {close_timeout: 30s}\n")
	pub, err := bus.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer pub.Close()
	require.NoError(t, pub.Subscriber.(message.SubscribeInitializer).SubscribeInitialize(topic))
	require.NoError(t, pub.Publish(context.Background(), topic, bus.Event{ID: "slow", Type: "t", Source: "s"}))

	c := startDrainChild(t, path, topic, time.Minute)
	require.Equal(t, "start slow", c.next(t, 30*time.Second))
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, "stopping", c.next(t, 10*time.Second))
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	var printed []string
	err = c.wait(t, 10*time.Second, func(l string) { printed = append(printed, l) })
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the process ended by the second signal, not by finishing its drain")
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGTERM, "exit status %v: want killed by SIGTERM", exit)
	assert.Empty(t, printed, "the handler neither finished nor saw its context end: the process was gone")
}
