package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// A broker that does not answer gets an error that says so and names the next step: the
// config section and file that decide where the broker is. consume does not speak of a
// producer.
func TestUnreachableBrokerErrorsNameTheNextStep(t *testing.T) {
	addr := brokertest.ClosedPort(t)
	host, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct{ backend, yaml string }{
		{"kafka", fmt.Sprintf("backend: kafka\nkafka: {brokers: [%q], dial_timeout: 1s}\n", addr)},
		{"redis", fmt.Sprintf("backend: redis\nredis: {addrs: [%q], dial_timeout: 1s}\n", addr)},
		{"rabbitmq", fmt.Sprintf("backend: rabbitmq\nrabbitmq: {host: %s, port: %s, dial_timeout: 1s}\n", host, port)},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			path := writeFile(t, "eventbus.yaml", tc.yaml)
			code, _, errOut := cli(t, context.Background(), "", "consume", "--topic", "t", "--count", "1", "--config", path)
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, "broker unavailable")
			assert.Contains(t, errOut, fmt.Sprintf("eventbus: hint: is the broker up? check the addresses in the %s: section of %s", tc.backend, path))
			assert.NotContains(t, errOut, "producer")
		})
	}
}

// A payload over the backend's limit is refused before it is sent, naming the limit and the
// key that sets it; nothing reaches the stream.
func TestPublishOverTheSizeLimitNamesTheKey(t *testing.T) {
	c := brokertest.Redis(t)
	topic := brokertest.RedisStream(t, "eventbus-test:size")
	path := writeFile(t, "eventbus.yaml", fmt.Sprintf("backend: redis\nredis:\n  addrs: [%q]\n  publisher: {max_message_bytes: 200}\n", brokertest.RedisAddr))
	big := fmt.Sprintf(`{"blob": %q}`, strings.Repeat("x", 300))
	code, _, errOut := cli(t, context.Background(), "", "publish", "--config", path, "--topic", topic, "--type", "t.v1", "--source", "s", "--data", big)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "over the limit of 200 (redis.publisher.max_message_bytes)")
	assert.Contains(t, errOut, "message too large")
	n, err := c.XLen(context.Background(), topic).Result()
	assert.NoError(t, err)
	assert.Zero(t, n, "a refused message reached the stream")
}
