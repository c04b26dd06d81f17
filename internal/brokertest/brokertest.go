// Package brokertest reaches the brokers the test suite runs against: an embedded Kafka broker
// per test, and the shared Redis and RabbitMQ that scripts/brokers.sh keeps running, each test
// in a key prefix or vhost of its own. Under -short a test that needs a shared broker is
// skipped with the reason; otherwise a broker that does not answer fails it, saying how to
// start one. Tests never stop or restart the shared brokers: fault tests start private ones.
package brokertest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/stretchr/testify/require"
)

// Logger is the logger for tests: warnings on stderr under -v, nothing otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// ClosedPort returns a loopback address on which nothing listens: a port the system handed
// out and that was closed again at once.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// FreePort is ClosedPort's port number, for a private broker or server to listen on.
func FreePort(t testing.TB) int {
	t.Helper()
	_, port, err := net.SplitHostPort(ClosedPort(t))
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}

// OpenBus opens a bus on the named backend with cfg (that backend's config type) and the
// test logger, closed when the test ends; an error fails the test.
func OpenBus(t testing.TB, backend string, cfg any, opts ...bus.Option) *bus.Bus {
	t.Helper()
	b, err := bus.OpenConfig(context.Background(), backend, cfg, append([]bus.Option{bus.WithLogger(Logger())}, opts...)...)
	require.NoError(t, err, "open a bus on %s", backend)
	t.Cleanup(func() { _ = b.Close() })
	return b
}
