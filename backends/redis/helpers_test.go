package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
)

// sharedAddr is the Redis every developer machine and CI runs (scripts/brokers.sh starts it).
// Tests share it: each uses its own key prefix and deletes its keys.
const sharedAddr = "127.0.0.1:6379"

// redisServerBin is redis-server's absolute path: DEBUG RESTART re-executes the binary by the
// path it was started with.
func redisServerBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is not installed (apt-get install redis-server); fault tests start private servers")
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	return abs
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// needBroker skips under -short and otherwise fails clearly when addr does not answer.
func needBroker(t testing.TB, addr string) *goredis.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis at " + addr + "; skipped with -short")
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("Redis at %s does not answer (%v): start it with scripts/brokers.sh ensure", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// prefix returns a key prefix of the test's own on the shared server, and deletes every key
// under it when the test ends.
func prefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	p := "eventbus-test:" + watermill.NewShortUUID() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 100).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

// testConfig returns settings that make a test's timings short.
func testConfig(addr string) *redisbackend.Config {
	cfg := redisbackend.DefaultConfig()
	cfg.Addrs = []string{addr}
	cfg.ConsumerGroup = "group-" + watermill.NewShortUUID()
	cfg.Consumer.BlockTime = 100 * time.Millisecond
	cfg.Consumer.ClaimInterval = 100 * time.Millisecond
	cfg.Consumer.MinIdle = 2 * time.Second
	cfg.Consumer.ConsumerTimeout = 0
	cfg.Consumer.DrainTimeout = 2 * time.Second
	cfg.Consumer.NackDelay = 10 * time.Millisecond
	cfg.DialTimeout = time.Second
	cfg.ReadTimeout = time.Second
	cfg.WriteTimeout = time.Second
	return cfg
}

func openBus(t testing.TB, cfg *redisbackend.Config, opts ...bus.Option) (*bus.Bus, *redisbackend.Subscriber) {
	t.Helper()
	b, err := bus.OpenConfig(context.Background(), redisbackend.Name, cfg, append([]bus.Option{bus.WithLogger(testLogger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	var sub *redisbackend.Subscriber
	require.True(t, b.As(&sub))
	return b, sub
}

func receive(t testing.TB, ctx context.Context, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		require.True(t, ok, "subscription closed")
		return m
	case <-ctx.Done():
		t.Fatal("no message before the deadline")
		return nil
	}
}

// server is a private redis-server on a free loopback port, a child of the test process, for
// fault tests: it can be restarted with or without its data and flushed without touching the
// shared server.
type server struct {
	t       testing.TB
	bin     string
	port    int
	dir     string
	persist bool
	extra   []string                // further redis-server arguments
	opts    func() *goredis.Options // how Client connects; nil for plain TCP without auth

	mu  sync.Mutex
	cmd *exec.Cmd
}

// startServer starts a private server. With persist it keeps an append-only file with
// appendfsync always, so a restart loses nothing; without, it keeps nothing on disk.
func startServer(t testing.TB, persist bool) *server {
	t.Helper()
	return startServerWith(t, persist, nil, nil)
}

// startServerWith starts a private server with further arguments; opts, when not nil, says
// how a client reaches it (TLS, a user), given the server's address.
func startServerWith(t testing.TB, persist bool, extra []string, opts func(addr string) *goredis.Options) *server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private redis-server; skipped with -short")
	}
	s := &server{t: t, bin: redisServerBin(t), port: freePort(t), dir: t.TempDir(), persist: persist, extra: extra}
	if opts != nil {
		s.opts = func() *goredis.Options { return opts(s.Addr()) }
	}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *server) args() []string {
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--enable-debug-command", "local", "--logfile", filepath.Join(s.dir, "redis.log")}
	if s.persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	for _, a := range s.extra {
		args = append(args, strings.ReplaceAll(a, "{port}", strconv.Itoa(s.port)))
	}
	return args
}

func (s *server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args()...)
	require.NoError(s.t, cmd.Start())
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	s.waitReady()
}

func (s *server) waitReady() {
	s.t.Helper()
	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private redis-server on %s did not start: %v", s.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a new raw client to the server; the caller closes it.
func (s *server) Client() *goredis.Client {
	o := &goredis.Options{Addr: s.Addr()}
	if s.opts != nil {
		o = s.opts()
	}
	o.MaxRetries, o.DialTimeout = -1, time.Second
	return goredis.NewClient(o)
}

// Restart stops the server and starts it again on the same port: SHUTDOWN NOSAVE loses every
// key unless the server keeps an append-only file, which SHUTDOWN flushes.
func (s *server) Restart() {
	s.t.Helper()
	c := s.Client()
	_ = c.Do(context.Background(), "SHUTDOWN", "NOSAVE").Err() // the connection drops: no reply
	_ = c.Close()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	_ = cmd.Wait()
	s.start()
}

// RestartCommand is a shell command that restarts the server in place (DEBUG RESTART
// re-executes redis-server in the same process, keeping its append-only file), for Watermill's
// universal suite, which restarts brokers by running a command.
func (s *server) RestartCommand() []string {
	return []string{"sh", "-c", fmt.Sprintf(
		"redis-cli -p %d DEBUG RESTART >/dev/null 2>&1; for i in $(seq 100); do redis-cli -p %d PING >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1",
		s.port, s.port)}
}

func (s *server) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// recordLosses makes cfg report data losses to a list and returns a function that reads it.
func recordLosses(cfg *redisbackend.Config) func() []redisbackend.DataLoss {
	var (
		mu     sync.Mutex
		losses []redisbackend.DataLoss
	)
	cfg.OnDataLoss = func(d redisbackend.DataLoss) { mu.Lock(); losses = append(losses, d); mu.Unlock() }
	return func() []redisbackend.DataLoss {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(losses)
	}
}
