package router_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// The test binary doubles as a consumer service for the tests about a process (exit codes,
// signals): started with RUNNER_CHILD=1, it runs router.Run with one handler on RUNNER_TOPIC
// reading the config file RUNNER_CONFIG. RUNNER_MODE=fail makes every handling fail;
// RUNNER_MODE=sleep:<duration> makes it take that long. It prints "start <id>" and "done <id>"
// on stdout around each handling.
func TestMain(m *testing.M) {
	if os.Getenv("RUNNER_CHILD") == "1" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

func childMain() int {
	cfg, err := config.Load(os.Getenv("RUNNER_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	mode := os.Getenv("RUNNER_MODE")
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	err = router.Run(context.Background(), cfg, router.Handler{Name: "child", Topic: os.Getenv("RUNNER_TOPIC"), Handle: func(msg *message.Message) error {
		say("start %s", msg.UUID)
		switch {
		case mode == "fail":
			return fmt.Errorf("handler refuses %s", msg.UUID)
		case strings.HasPrefix(mode, "sleep:"):
			d, _ := time.ParseDuration(strings.TrimPrefix(mode, "sleep:"))
			select {
			case <-time.After(d):
			case <-msg.Context().Done():
				say("cancelled %s", msg.UUID)
				return msg.Context().Err()
			}
		}
		say("done %s", msg.UUID)
		return nil
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		return 1
	}
	return 0
}

type child struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *brokertest.SyncBuffer
	done   chan struct{}
	err    error
}

// startChild runs the test binary as a consumer service with the config yaml.
func startChild(t *testing.T, yaml, topic, mode string) *child {
	t.Helper()
	path := filepath.Join(t.TempDir(), "eventbus.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RUNNER_CHILD=1", "RUNNER_CONFIG="+path, "RUNNER_TOPIC="+topic, "RUNNER_MODE="+mode)
	c := &child{cmd: cmd, lines: make(chan string, 1000), stderr: &brokertest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("child stderr:\n%s", c.stderr.String())
		}
	})
	return c
}

// next returns the child's next stdout line, failing after timeout.
func (c *child) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		require.True(t, ok, "child exited: %s", c.stderr.String())
		return l
	case <-time.After(timeout):
		t.Fatalf("no line from the child in %s; stderr:\n%s", timeout, c.stderr.String())
		return ""
	}
}

// exitCode waits for the child to exit and returns its exit code.
func (c *child) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	go func() {
		for range c.lines {
		}
	}()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("child still running after %s; stderr:\n%s", timeout, c.stderr.String())
	}
	return c.cmd.ProcessState.ExitCode()
}

func redisYAML(addr, group, routerExtra string) string {
	return fmt.Sprintf("backend: redis\nredis: {addrs: [%q], consumer_group: %s, consumer: {start_from: oldest}}\nrouter:\n  close_timeout: 10s\n  log: {format: json, level: info}\n%s", addr, group, routerExtra)
}

func publishN(t *testing.T, b *bus.Bus, topic string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		ev := bus.Event{ID: fmt.Sprintf("ev-%d", i), Type: "org.openedx.learning.course.enrollment.created.v1", Source: "test", Data: map[string]int{"i": i}}
		require.NoError(t, b.Publish(context.Background(), topic, ev))
		ids = append(ids, ev.ID)
	}
	return ids
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func openBus(t *testing.T, yaml string) *bus.Bus {
	t.Helper()
	cfg, err := config.Parse("eventbus.yaml", []byte(yaml))
	require.NoError(t, err)
	b, err := bus.Open(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestErrorLimitExitsNonZero: a handler that fails every time makes the process exit 1 after
// router.max_consecutive_errors final failures, saying why.
func TestErrorLimitExitsNonZero(t *testing.T) {
	topic := "runner:" + t.Name()
	stream := brokertest.RedisStream(t, topic)
	yaml := redisYAML("127.0.0.1:6379", "g", fmt.Sprintf("  max_consecutive_errors: 3\n  retry: {max_attempts: 2, initial_interval: 1ms}\n  http: {addr: %q}\n", brokertest.ClosedPort(t)))
	publishN(t, openBus(t, yaml), stream, 5)
	c := startChild(t, yaml, stream, "fail")
	assert.Equal(t, 1, c.exitCode(t, 30*time.Second))
	assert.Contains(t, c.stderr.String(), "consecutive handler failures reached router.max_consecutive_errors")
	assert.Contains(t, c.stderr.String(), "3 in a row")
}

// TestSIGTERMDrainsInFlightHandler: SIGTERM while a handler runs lets it finish (its context
// alive), then the process exits 0; a second signal during the drain exits at once, 1.
func TestSIGTERMDrainsInFlightHandler(t *testing.T) {
	topic := "runner:" + t.Name()
	stream := brokertest.RedisStream(t, topic)
	yaml := redisYAML("127.0.0.1:6379", "g", fmt.Sprintf("  http: {addr: %q}\n", brokertest.ClosedPort(t)))
	publishN(t, openBus(t, yaml), stream, 1)

	c := startChild(t, yaml, stream, "sleep:1s")
	require.Equal(t, "start ev-0", c.next(t, 20*time.Second))
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, "done ev-0", c.next(t, 10*time.Second))
	assert.Equal(t, 0, c.exitCode(t, 15*time.Second))

	t.Run("second signal", func(t *testing.T) {
		publishN(t, openBus(t, yaml), stream, 1)
		c := startChild(t, yaml, stream, "sleep:1m")
		require.Equal(t, "start ev-0", c.next(t, 20*time.Second))
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
		require.Eventually(t, func() bool { return strings.Contains(c.stderr.String(), "draining") }, 10*time.Second, 10*time.Millisecond)
		start := time.Now()
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGINT))
		assert.Equal(t, 1, c.exitCode(t, 10*time.Second))
		assert.Less(t, time.Since(start), 10*time.Second)
		assert.Contains(t, c.stderr.String(), "second signal: exiting at once")
	})
}

func publishCtx(ctx context.Context, b *bus.Bus, topic string) error {
	return b.Publish(ctx, topic, bus.Event{Type: "org.openedx.learning.course.enrollment.created.v1", Source: "test", Data: map[string]int{"traced": 1}})
}
