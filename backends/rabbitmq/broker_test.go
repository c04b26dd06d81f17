package rabbitmq_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

// The shared broker every developer machine and CI runs (scripts/brokers.sh). Tests never stop,
// restart or purge it: each test run works in a vhost of its own, deleted at the end, and fault
// tests start a private node.
const (
	sharedAddr = "127.0.0.1:5672"
	sharedNode = "rabbit@localhost"
)

var shared struct {
	once  sync.Once
	vhost string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.vhost != "" {
		if out, err := rabbitmqctl(sharedNode, "delete_vhost", shared.vhost); err != nil {
			fmt.Fprintf(os.Stderr, "rabbitmq tests: could not delete vhost %s: %v\n%s", shared.vhost, err, out)
			code = 1
		}
	}
	os.Exit(code)
}

// brokerURL returns an amqp URL for a vhost on the shared broker that belongs to this test run.
// Under -short it skips the test; otherwise a broker that does not answer fails it, saying how
// to start one.
func brokerURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the RabbitMQ broker on " + sharedAddr + "; skipped under -short")
	}
	shared.once.Do(func() {
		if err := amqpAnswers(sharedAddr, "%2f"); err != nil {
			shared.err = fmt.Errorf("RabbitMQ does not answer on %s as guest/guest: %w (start it with scripts/brokers.sh rabbitmq)", sharedAddr, err)
			return
		}
		vhost := "eventbus-test-" + watermill.NewShortUUID()
		if out, err := rabbitmqctl(sharedNode, "add_vhost", vhost); err != nil {
			shared.err = fmt.Errorf("rabbitmqctl add_vhost %s: %w\n%s", vhost, err, out)
			return
		}
		shared.vhost = vhost
		if out, err := rabbitmqctl(sharedNode, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"); err != nil {
			shared.err = fmt.Errorf("rabbitmqctl set_permissions -p %s: %w\n%s", vhost, err, out)
		}
	})
	require.NoError(t, shared.err)
	return "amqp://guest:guest@" + sharedAddr + "/" + url.PathEscape(shared.vhost)
}

func amqpAnswers(addr, vhost string) error {
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/"+vhost, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

func rabbitmqctl(node string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", node}, args...)...).CombinedOutput()
}

// node is a private RabbitMQ node for a fault test, which may stop and start it at will.
type node struct {
	name string
	port int
	dir  string
}

// startNode starts a RabbitMQ node of the test's own, on free ports, and stops and removes it
// when the test ends. It takes about ten seconds.
func startNode(t testing.TB) *node {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private RabbitMQ node; skipped under -short")
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatalf("rabbitmq-server is not installed (scripts/brokers.sh installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "eventbus-rabbitmq-node-")
	require.NoError(t, err)
	n := &node{name: "eventbus-ft-" + strings.ToLower(watermill.NewShortUUID()[:10]) + "@localhost", port: freePort(t), dir: dir}
	for _, d := range []string{"log", "mnesia"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "plugins"), []byte("[].\n"), 0o644))
	// rabbitmq-server switches to the rabbitmq user when started as root.
	if out, err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", dir).CombinedOutput(); err != nil && os.Geteuid() == 0 {
		t.Fatalf("chown %s: %v\n%s", dir, err, out)
	}
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(freePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
	)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "rabbitmq-server -detached: %s", out)
	t.Cleanup(func() {
		if out, err := rabbitmqctl(n.name, "stop"); err != nil {
			t.Logf("stopping node %s: %v\n%s", n.name, err, out)
		}
		_ = os.RemoveAll(dir)
	})
	n.awaitUp(t, 90*time.Second)
	return n
}

func (n *node) url() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%%2f", n.port) }

// awaitUp waits until the node accepts AMQP connections: rabbitmqctl await_startup can return
// before the listener is up.
func (n *node) awaitUp(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = amqpAnswers("127.0.0.1:"+strconv.Itoa(n.port), "%2f"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := filepath.Glob(filepath.Join(n.dir, "log", "*.log"))
	t.Fatalf("RabbitMQ node %s did not accept AMQP connections on port %d within %s: %v (logs: %v)", n.name, n.port, within, err, logs)
}

func (n *node) stopApp(t testing.TB) {
	t.Helper()
	out, err := rabbitmqctl(n.name, "stop_app")
	require.NoError(t, err, "stop_app: %s", out)
}

func (n *node) startApp(t testing.TB) {
	t.Helper()
	out, err := rabbitmqctl(n.name, "start_app")
	require.NoError(t, err, "start_app: %s", out)
	n.awaitUp(t, 60*time.Second)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig is the default configuration pointed at url, with short reconnect waits.
func testConfig(url string) *rabbitmq.Config {
	cfg := rabbitmq.DefaultConfig()
	cfg.URL = config.Secret(url)
	cfg.Reconnect.InitialInterval = 50 * time.Millisecond
	cfg.Reconnect.MaxInterval = time.Second
	cfg.ConnectionName = "eventbus-test"
	cfg.Consumer.NackDelay = 10 * time.Millisecond
	return cfg
}

func openBackend(t testing.TB, cfg *rabbitmq.Config, opts ...bus.Option) *bus.Bus {
	t.Helper()
	b, err := bus.OpenConfig(context.Background(), rabbitmq.Name, cfg, append([]bus.Option{bus.WithLogger(testLogger())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func uniqueTopic(prefix string) string { return prefix + "-" + watermill.NewShortUUID() }
