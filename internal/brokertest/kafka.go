package brokertest

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
)

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

// KafkaCommittedOffset returns group's committed offset of partition 0 of topic, -1 if none,
// and fails the test when the broker does not answer.
func KafkaCommittedOffset(t testing.TB, addr, group, topic string) int64 {
	t.Helper()
	got, err := KafkaCommitted(addr, group, topic, 1)
	require.NoError(t, err, "read group %s's committed offset of %s", group, topic)
	return got[0]
}

// RestartableKafka is a private embedded Kafka broker that keeps its data in a directory and
// restarts in place: same port, same directory, so everything written before is served again.
type RestartableKafka struct {
	port int
	dir  string

	mu sync.Mutex
	b  *embedded.Broker
}

// StartRestartableKafka starts a RestartableKafka, closed when the test ends.
func StartRestartableKafka(t testing.TB) *RestartableKafka {
	t.Helper()
	r := &RestartableKafka{dir: t.TempDir()}
	b, err := embedded.Start(embedded.Options{DataDir: r.dir})
	require.NoError(t, err, "start the embedded Kafka broker")
	r.b = b
	_, port, err := net.SplitHostPort(b.Addrs()[0])
	require.NoError(t, err)
	r.port, err = strconv.Atoi(port)
	require.NoError(t, err)
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.b != nil {
			_ = r.b.Close()
		}
	})
	return r
}

// Addr is the broker's host:port, the same across restarts.
func (r *RestartableKafka) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Restart closes the broker and starts it again on the same port and data directory.
func (r *RestartableKafka) Restart() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.b != nil {
		_ = r.b.Close()
		r.b = nil
	}
	b, err := embedded.Start(embedded.Options{Port: r.port, DataDir: r.dir})
	if err != nil {
		return fmt.Errorf("restart the embedded broker on port %d: %w", r.port, err)
	}
	r.b = b
	return nil
}
