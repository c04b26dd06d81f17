package brokertest

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// RedisAddr is the shared Redis (scripts/brokers.sh).
const RedisAddr = "127.0.0.1:6379"

// Redis returns a client of the shared Redis, closed when the test ends.
func Redis(t testing.TB) *goredis.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Redis on " + RedisAddr + "; skipped under -short")
	}
	c := goredis.NewClient(&goredis.Options{Addr: RedisAddr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("Redis does not answer on %s (%v): start it with scripts/brokers.sh redis", RedisAddr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RedisStream returns a stream name of this test alone, deleted (with its poison stream) when
// the test ends.
func RedisStream(t testing.TB, prefix string) string {
	t.Helper()
	c := Redis(t)
	name := prefix + ":" + watermill.NewShortUUID()
	t.Cleanup(func() { c.Del(context.Background(), name, name+".poison") })
	return name
}

// StartRedis starts a private redis-server (StartRedisServer) keeping nothing on disk, with
// the extra arguments (--requirepass, say), and returns its address and a function that kills
// it (an outage; it is also killed when the test ends).
func StartRedis(t testing.TB, args ...string) (addr string, kill func()) {
	t.Helper()
	s := StartRedisServer(t, RedisServerOptions{Args: args})
	return s.Addr(), s.Kill
}

// RedisServerOptions says how StartRedisServer starts a private server.
type RedisServerOptions struct {
	// Persist keeps an append-only file with appendfsync always, so that a restart loses
	// nothing; without, the server keeps nothing on disk.
	Persist bool
	// Args are further redis-server arguments; "{port}" in one stands for the server's port.
	Args []string
	// Client, when not nil, says how a client reaches the server at addr (TLS, a user);
	// default plain TCP without auth.
	Client func(addr string) *goredis.Options
}

// RedisServer is a private redis-server on a free loopback port, a child of the test process,
// for fault tests: it can be killed, restarted with or without its data, and flushed without
// touching the shared server.
type RedisServer struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	o    RedisServerOptions

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedisServer starts a private server, killed when the test ends, and waits until it
// answers (a reply that demands AUTH counts). Under -short the test is skipped.
func StartRedisServer(t testing.TB, o RedisServerOptions) *RedisServer {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private redis-server; skipped under -short")
	}
	s := &RedisServer{t: t, bin: redisServerBin(t), port: FreePort(t), dir: t.TempDir(), o: o}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// redisServerBin is redis-server's absolute path, so that a restart runs the same binary
// whatever the working directory.
func redisServerBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is not installed (apt-get install redis-server); fault tests start private servers")
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	return abs
}

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *RedisServer) args() []string {
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--logfile", filepath.Join(s.dir, "redis.log")}
	if s.o.Persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	for _, a := range s.o.Args {
		args = append(args, strings.ReplaceAll(a, "{port}", strconv.Itoa(s.port)))
	}
	return args
}

func (s *RedisServer) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args()...)
	require.NoError(s.t, cmd.Start())
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	s.waitReady()
}

// waitReady waits until the server replies to PING; an error reply (NOAUTH from a server with
// a password) is a reply.
func (s *RedisServer) waitReady() {
	s.t.Helper()
	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		var reply goredis.Error
		if err == nil || errors.As(err, &reply) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private redis-server on %s did not start (log in %s): %v", s.Addr(), s.dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a new raw client to the server, which does not retry; the caller closes it.
func (s *RedisServer) Client() *goredis.Client {
	o := &goredis.Options{Addr: s.Addr()}
	if s.o.Client != nil {
		o = s.o.Client(s.Addr())
	}
	o.MaxRetries, o.DialTimeout = -1, time.Second
	return goredis.NewClient(o)
}

// Restart stops the server and starts it again on the same port: SHUTDOWN NOSAVE loses every
// key unless the server keeps an append-only file (Persist), which SHUTDOWN flushes.
func (s *RedisServer) Restart() {
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

// Kill kills the server (an outage) and waits for it; killing it again does nothing.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
