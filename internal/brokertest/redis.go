package brokertest

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
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

// StartRedis starts a private redis-server on a free loopback port with the extra arguments
// (--requirepass, say), keeping nothing on disk, and returns its address and a function that
// kills it (an outage; it is also killed when the test ends). It waits until the port accepts
// connections: a server with a password answers PING only after AUTH.
func StartRedis(t testing.TB, args ...string) (addr string, kill func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private redis-server; skipped under -short")
	}
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is not installed (apt-get install redis-server)")
	addr = ClosedPort(t)
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}, args...)...)
	require.NoError(t, cmd.Start())
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}, 10*time.Second, 20*time.Millisecond, "private redis-server on %s did not start (log in %s)", addr, dir)
	return addr, kill
}
