package brokertest

import (
	"context"
	"fmt"
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
)

// The shared RabbitMQ (scripts/brokers.sh).
const (
	RabbitMQAddr = "127.0.0.1:5672"
	RabbitMQNode = "rabbit@localhost"
)

var rabbit struct {
	once sync.Once
	err  error
}

// RabbitMQVhost makes a vhost of the test's own on the shared RabbitMQ, deleted when the test
// ends, and returns its name.
func RabbitMQVhost(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs RabbitMQ on " + RabbitMQAddr + "; skipped under -short")
	}
	rabbit.once.Do(func() {
		if err := amqpAnswers(RabbitMQAddr, "%2f"); err != nil {
			rabbit.err = fmt.Errorf("RabbitMQ does not answer on %s as guest/guest: %w (start it with scripts/brokers.sh rabbitmq)", RabbitMQAddr, err)
		}
	})
	require.NoError(t, rabbit.err)
	vhost := "eventbus-test-" + watermill.NewShortUUID()
	RabbitMQCtl(t, "add_vhost", vhost)
	t.Cleanup(func() { RabbitMQCtl(t, "delete_vhost", vhost) })
	RabbitMQCtl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	return vhost
}

// RabbitMQURL is the amqp URL of vhost on the shared broker, as guest.
func RabbitMQURL(vhost string) string {
	return "amqp://guest:guest@" + RabbitMQAddr + "/" + url.PathEscape(vhost)
}

// RabbitMQCtl runs rabbitmqctl against the shared node and fails the test on error.
func RabbitMQCtl(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", append([]string{"-n", RabbitMQNode}, args...)...).CombinedOutput()
	require.NoError(t, err, "rabbitmqctl %v (is RabbitMQ running? scripts/brokers.sh rabbitmq): %s", args, out)
	return out
}

var runVhost struct {
	once  sync.Once
	vhost string
	err   error
}

// RabbitMQRunURL returns the amqp URL, as guest, of a vhost on the shared broker that all the
// tests of this test binary's run share, made on first use: cheaper than a vhost per test
// (rabbitmqctl takes a second a call) where tests keep apart by their topics. The package's
// TestMain deletes it with RabbitMQDeleteRunVhost. Under -short it skips the test; otherwise a
// broker that does not answer fails it, saying how to start one.
func RabbitMQRunURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the RabbitMQ broker on " + RabbitMQAddr + "; skipped under -short")
	}
	runVhost.once.Do(func() {
		if err := amqpAnswers(RabbitMQAddr, "%2f"); err != nil {
			runVhost.err = fmt.Errorf("RabbitMQ does not answer on %s as guest/guest: %w (start it with scripts/brokers.sh rabbitmq)", RabbitMQAddr, err)
			return
		}
		vhost := "eventbus-test-" + watermill.NewShortUUID()
		if out, err := rabbitmqctl(RabbitMQNode, "add_vhost", vhost); err != nil {
			runVhost.err = fmt.Errorf("rabbitmqctl add_vhost %s: %w\n%s", vhost, err, out)
			return
		}
		runVhost.vhost = vhost
		if out, err := rabbitmqctl(RabbitMQNode, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"); err != nil {
			runVhost.err = fmt.Errorf("rabbitmqctl set_permissions -p %s: %w\n%s", vhost, err, out)
		}
	})
	require.NoError(t, runVhost.err)
	return RabbitMQURL(runVhost.vhost)
}

// RabbitMQDeleteRunVhost deletes RabbitMQRunURL's vhost if a test made it; TestMain calls it
// after m.Run and fails the run on an error.
func RabbitMQDeleteRunVhost() error {
	if runVhost.vhost == "" {
		return nil
	}
	if out, err := rabbitmqctl(RabbitMQNode, "delete_vhost", runVhost.vhost); err != nil {
		return fmt.Errorf("could not delete vhost %s: %w\n%s", runVhost.vhost, err, out)
	}
	return nil
}

func amqpAnswers(addr, vhost string) error {
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/"+vhost, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// rabbitmqctl runs rabbitmqctl against node, giving up after two minutes.
func rabbitmqctl(node string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", node}, args...)...).CombinedOutput()
}

// PrivateRabbitMQ is a private RabbitMQ node for a fault test, which may stop and start it at
// will: Name is its Erlang node name, Port its AMQP port on 127.0.0.1.
type PrivateRabbitMQ struct {
	Name string
	Port int
	dir  string
}

// StartRabbitMQ starts a RabbitMQ node of the test's own, on free ports, and stops and
// removes it when the test ends. It takes about ten seconds; under -short the test is skipped.
func StartRabbitMQ(t testing.TB) *PrivateRabbitMQ {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a private RabbitMQ node; skipped under -short")
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatalf("rabbitmq-server is not installed (scripts/brokers.sh installs it): %v", err)
	}
	dir, err := os.MkdirTemp("", "eventbus-rabbitmq-node-")
	require.NoError(t, err)
	n := &PrivateRabbitMQ{Name: "eventbus-ft-" + strings.ToLower(watermill.NewShortUUID()[:10]) + "@localhost", Port: FreePort(t), dir: dir}
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
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(FreePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq"),
	)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "rabbitmq-server -detached: %s", out)
	t.Cleanup(func() {
		if out, err := rabbitmqctl(n.Name, "stop"); err != nil {
			t.Logf("stopping node %s: %v\n%s", n.Name, err, out)
		}
		_ = os.RemoveAll(dir)
	})
	n.awaitUp(t, 90*time.Second)
	return n
}

// URL is the node's amqp URL, as guest, of the default vhost.
func (n *PrivateRabbitMQ) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/%%2f", n.Port)
}

// awaitUp waits until the node accepts AMQP connections: rabbitmqctl await_startup can return
// before the listener is up.
func (n *PrivateRabbitMQ) awaitUp(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = amqpAnswers("127.0.0.1:"+strconv.Itoa(n.Port), "%2f"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := filepath.Glob(filepath.Join(n.dir, "log", "*.log"))
	t.Fatalf("RabbitMQ node %s did not accept AMQP connections on port %d within %s: %v (logs: %v)", n.Name, n.Port, within, err, logs)
}

// StopApp stops the RabbitMQ application on the node (an outage; the node stays up).
func (n *PrivateRabbitMQ) StopApp(t testing.TB) {
	t.Helper()
	out, err := rabbitmqctl(n.Name, "stop_app")
	require.NoError(t, err, "stop_app: %s", out)
}

// StartApp starts the application again and waits until it accepts connections.
func (n *PrivateRabbitMQ) StartApp(t testing.TB) {
	t.Helper()
	out, err := rabbitmqctl(n.Name, "start_app")
	require.NoError(t, err, "start_app: %s", out)
	n.awaitUp(t, 60*time.Second)
}
