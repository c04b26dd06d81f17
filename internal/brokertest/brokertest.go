// Package brokertest reaches the brokers the test suite runs against: an embedded Kafka broker
// per test, and the shared Redis and RabbitMQ that scripts/brokers.sh keeps running, each test
// in a key prefix or vhost of its own. Under -short a test that needs a shared broker is
// skipped with the reason; otherwise a broker that does not answer fails it, saying how to
// start one. Tests never stop or restart the shared brokers: fault tests start private ones.
package brokertest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
)

// The shared brokers (scripts/brokers.sh).
const (
	RedisAddr    = "127.0.0.1:6379"
	RabbitMQAddr = "127.0.0.1:5672"
	RabbitMQNode = "rabbit@localhost"
)

// Logger is the logger for tests: warnings on stderr under -v, nothing otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// StartKafka starts a private embedded Kafka broker for one test, closed when it ends, and
// returns its address; every client reaches it over TCP with the Kafka protocol.
func StartKafka(t testing.TB, partitions int32) string {
	t.Helper()
	b, err := embedded.Start(embedded.Options{Partitions: partitions})
	require.NoError(t, err, "start the embedded Kafka broker")
	t.Cleanup(func() { _ = b.Close() })
	return b.Addrs()[0]
}

// StartKafkaSASL starts a private in-process Kafka broker (kfake) that demands SASL PLAIN as
// user with password, closed when the test ends, and returns its address.
//
// On a wrong password kfake just drops the connection, where Apache Kafka first answers the
// SaslAuthenticate request with error code 58, SASL_AUTHENTICATION_FAILED (KIP-152), and
// closes the connection afterwards. A control function answers as Apache Kafka does, so that a
// test sees what a client of a real broker sees.
func StartKafkaSASL(t testing.TB, user, password string) string {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", user, password))
	require.NoError(t, err, "start the in-process Kafka broker with SASL")
	t.Cleanup(cluster.Close)
	cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		auth := req.(*kmsg.SASLAuthenticateRequest)
		// PLAIN's message is authzid NUL authcid NUL passwd (RFC 4616).
		parts := bytes.Split(auth.SASLAuthBytes, []byte{0})
		if len(parts) == 3 && string(parts[1]) == user && string(parts[2]) == password {
			return nil, nil, false // kfake authenticates it
		}
		resp := auth.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: Invalid username or password"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	return cluster.ListenAddrs()[0]
}

// KafkaConfig is a Kafka config for tests: short group sessions so rebalances settle in
// seconds, fast nack redelivery, and the pipelined subscriber when window > 0.
func KafkaConfig(addr, group string, window int, partitions int32) *kafka.Config {
	cfg := kafka.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.ConsumerGroup = group
	cfg.Consumer.MaxInFlight = window
	cfg.Consumer.SessionTimeout = 3 * time.Second
	cfg.Consumer.HeartbeatInterval = 500 * time.Millisecond
	cfg.Consumer.RebalanceTimeout = 3 * time.Second
	cfg.Consumer.DrainTimeout = time.Second
	cfg.Consumer.NackDelay = 20 * time.Millisecond
	cfg.Topics.Partitions = partitions
	return cfg
}

// KafkaYAML is the kafka: section of KafkaConfig, for tests that go through a config file.
func KafkaYAML(addr string) string {
	return fmt.Sprintf("kafka:\n  brokers: [%s]\n  consumer: {session_timeout: 3s, heartbeat_interval: 500ms, rebalance_timeout: 3s, drain_timeout: 1s, nack_delay: 20ms}\n", addr)
}

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
		conn, err := amqp.DialConfig("amqp://guest:guest@"+RabbitMQAddr+"/%2f", amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
		if err != nil {
			rabbit.err = fmt.Errorf("RabbitMQ does not answer on %s as guest/guest: %w (start it with scripts/brokers.sh rabbitmq)", RabbitMQAddr, err)
			return
		}
		_ = conn.Close()
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

// KafkaCommitted returns group's committed offsets of topic's partitions 0..partitions-1 (-1:
// none committed). It returns an error instead of failing the test, so that it can be polled
// from a require.Eventually condition, which runs on another goroutine.
func KafkaCommitted(addr, group, topic string, partitions int32) (map[int32]int64, error) {
	admin, err := sarama.NewClusterAdmin([]string{addr}, sarama.NewConfig())
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	parts := make([]int32, partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	res, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(parts))
	for _, p := range parts {
		out[p] = -1
		if block := res.GetBlock(topic, p); block != nil {
			out[p] = block.Offset
		}
	}
	return out, nil
}

// KafkaCommittedIs is a require.Eventually condition: partition 0 of topic has offset want
// committed by group. A transient error is a false, retried, not a failure.
func KafkaCommittedIs(addr, group, topic string, want int64) func() bool {
	return func() bool {
		got, err := KafkaCommitted(addr, group, topic, 1)
		return err == nil && got[0] == want
	}
}
