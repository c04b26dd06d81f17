package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rabbitmqConfig writes a config file that differs from the defaults only in `backend:
// rabbitmq` and a vhost of the test's own on the shared broker, deleted when the test ends.
func rabbitmqConfig(t *testing.T, extra ...string) string {
	t.Helper()
	vhost := brokertest.RabbitMQVhost(t)
	return writeFile(t, "eventbus.yaml", fmt.Sprintf("backend: rabbitmq\nrabbitmq:\n  vhost: %s\n", vhost)+strings.Join(extra, ""))
}

func TestDemoOnRabbitMQ(t *testing.T) {
	cfg := rabbitmqConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, errOut := cli(t, ctx, "", "demo", "--config", cfg, "--events", "120", "--keys", "10")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "eventbus demo on rabbitmq (brokers [amqp://127.0.0.1:5672/eventbus-test-")
	assert.Regexp(t, `handled\s+120 events`, out)
	assert.Regexp(t, `\.enrollments\s+80\s+80\s+10\s+held`, out)
	assert.Regexp(t, `\.certificates\s+40\s+40\s+10\s+held`, out)
	assert.Contains(t, out, "capabilities of rabbitmq: consumer-groups, persistence")
}

// On RabbitMQ a group's queue keeps messages from the moment it exists. With the default config
// publish declares no queue, so a topic no group has subscribed to refuses the event, saying
// which setting keeps it; nothing is left behind.
func TestPublishWithNoGroupFailsOnRabbitMQ(t *testing.T) {
	cfg := rabbitmqConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, _, errOut := cli(t, ctx, "", "publish", "--config", cfg, "--topic", "enrollments",
		"--type", "t.v1", "--source", "s", "--id", "evt-1", "--data", `{}`)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no queue is bound to topic enrollments")
	assert.Contains(t, errOut, "rabbitmq.publisher.declare_groups")
}

// With the group listed in publisher.declare_groups, publish declares its queue, so consume in
// that group reads what was published before it started; a new group of consume's own was not
// there to keep them.
func TestPublishThenConsumeOnRabbitMQ(t *testing.T) {
	cfg := rabbitmqConfig(t, "  publisher: {declare_groups: [eventbus]}\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, out, errOut := cli(t, ctx, "", "publish", "--config", cfg, "--topic", "enrollments",
		"--type", "org.openedx.learning.course.enrollment.created.v1", "--source", "openedx/lms/web",
		"--key", "user-42", "--id", "evt-1", "--data", `{"user_id": 42}`)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, "published evt-1 to enrollments\n", out)

	code, _, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", "enrollments", "--count", "1", "--timeout", "2s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "received 0 of 1 events from enrollments within 2s")

	code, out, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", "enrollments", "--group", "eventbus", "--from", "oldest", "--count", "1", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var ev consumedEvent
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &ev))
	assert.Equal(t, "evt-1", ev.ID)
	assert.Equal(t, "user-42", ev.Key)
	assert.JSONEq(t, `{"user_id": 42}`, string(ev.Payload))
	assert.Equal(t, "org.openedx.learning.course.enrollment.created.v1", ev.Headers["ce_type"])
}
