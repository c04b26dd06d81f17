// Package tests runs the conformance suite against every backend, over real connections: Kafka
// on an embedded broker, Redis and RabbitMQ on the brokers scripts/brokers.sh keeps running.
package tests

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	_ "github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/tests/conformance"
)

func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("conformance.yaml", []byte(doc))
	require.NoError(t, err)
	return cfg
}

func TestKafka(t *testing.T) {
	broker, err := embedded.Start(embedded.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	cfg := parse(t, fmt.Sprintf(`backend: kafka
kafka:
  brokers: [%s]
  consumer: {session_timeout: 3s, heartbeat_interval: 200ms, rebalance_timeout: 3s}
`, broker.Addrs()[0]))
	conformance.Run(t, conformance.ConfigHarness(cfg))
}

func TestKafkaPipelined(t *testing.T) {
	broker, err := embedded.Start(embedded.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = broker.Close() })
	cfg := parse(t, fmt.Sprintf(`backend: kafka
kafka:
  brokers: [%s]
  consumer: {session_timeout: 3s, heartbeat_interval: 200ms, rebalance_timeout: 3s, max_in_flight: 16, drain_timeout: 1s}
`, broker.Addrs()[0]))
	conformance.Run(t, conformance.ConfigHarness(cfg))
}

func TestRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Redis on 127.0.0.1:6379; skipped under -short")
	}
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	require.NoError(t, client.Ping(ctx).Err(), "Redis does not answer on 127.0.0.1:6379 (start it with scripts/brokers.sh redis)")

	h := conformance.ConfigHarness(parse(t, "backend: redis\nredis:\n  addrs: [127.0.0.1:6379]\n"))
	h.Topic = func(t *testing.T) string {
		topic := "eventbus-conformance:" + watermill.NewShortUUID()
		t.Cleanup(func() { client.Del(context.Background(), topic) })
		return topic
	}
	conformance.Run(t, h)
}

// rabbitmqVhost makes a vhost of the test's own on the shared broker, deleted when it ends.
func rabbitmqVhost(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs RabbitMQ on 127.0.0.1:5672; skipped under -short")
	}
	vhost := "eventbus-conformance-" + watermill.NewShortUUID()
	ctl := func(args ...string) {
		t.Helper()
		out, err := exec.Command("rabbitmqctl", append([]string{"-n", "rabbit@localhost"}, args...)...).CombinedOutput()
		require.NoError(t, err, "rabbitmqctl %v (is RabbitMQ running? scripts/brokers.sh rabbitmq): %s", args, out)
	}
	ctl("add_vhost", vhost)
	t.Cleanup(func() { ctl("delete_vhost", vhost) })
	ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	return vhost
}

func TestRabbitMQ(t *testing.T) {
	for name, extra := range map[string]string{
		"quorum":                  "",
		"single-active-consumer":  "  queue: {single_active_consumer: true}\n",
		"stream":                  "  queue: {type: stream}\n",
		"single-active-pipelined": "  queue: {single_active_consumer: true}\n  consumer: {max_in_flight: 16}\n",
	} {
		t.Run(name, func(t *testing.T) {
			vhost := rabbitmqVhost(t)
			conformance.Run(t, conformance.ConfigHarness(parse(t, "backend: rabbitmq\nrabbitmq:\n  vhost: "+vhost+"\n"+extra)))
		})
	}
}
