package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const redisCLIConfig = "backend: redis\nredis:\n  addrs: [127.0.0.1:6379]\n"

// `backend: redis` is the only change needed to run the demo's handlers on Redis. The demo
// leaves none of its streams behind.
func TestDemoOnRedis(t *testing.T) {
	c := brokertest.Redis(t)
	cfg := writeFile(t, "eventbus.yaml", redisCLIConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, errOut := cli(t, ctx, "", "demo", "--config", cfg, "--events", "120", "--keys", "10")
	topics := regexp.MustCompile(`eventbus-demo-\S+\.(?:enrollments|certificates)`).FindAllString(out, -1)
	require.Len(t, topics, 2, out)
	for _, topic := range topics {
		assert.Equal(t, int64(0), c.Exists(context.Background(), topic, topic+".poison").Val(), "%s left behind", topic)
		c.Del(context.Background(), topic, topic+".poison")
	}
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "eventbus demo on redis")
	assert.Regexp(t, `handled\s+120 events`, out)
	assert.Regexp(t, `\.enrollments\s+80\s+80\s+10\s+held`, out)
	assert.Regexp(t, `\.certificates\s+40\s+40\s+10\s+held`, out)
}

func TestPublishThenConsumeOnRedis(t *testing.T) {
	c := brokertest.Redis(t)
	cfg := writeFile(t, "eventbus.yaml", redisCLIConfig)
	topic := "eventbus-test:" + watermill.NewShortUUID() + ":enrollments"
	t.Cleanup(func() { c.Del(context.Background(), topic) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, out, errOut := cli(t, ctx, "", "publish", "--config", cfg, "--topic", topic,
		"--type", "org.openedx.learning.course.enrollment.created.v1", "--source", "openedx/lms/web",
		"--key", "user-42", "--id", "evt-1", "--header", "sourcehost=lms-1", "--data", `{"user_id": 42}`)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, "published evt-1 to "+topic+"\n", out)

	entries, err := c.XRange(context.Background(), topic, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "evt-1", entries[0].Values["id"])
	assert.Equal(t, "org.openedx.learning.course.enrollment.created.v1", entries[0].Values["type"])
	assert.Equal(t, "lms-1", entries[0].Values["sourcehost"])
	assert.JSONEq(t, `{"user_id": 42}`, entries[0].Values["event_data"].(string))

	code, out, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", topic, "--from", "oldest", "--count", "1", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var got consumedEvent
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &got))
	assert.Equal(t, "evt-1", got.ID)
	assert.Equal(t, "user-42", got.Key)
	assert.Equal(t, "lms-1", got.Headers["sourcehost"])
	assert.JSONEq(t, `{"user_id": 42}`, string(got.Payload))
	groups, err := c.XInfoGroups(context.Background(), topic).Result()
	require.NoError(t, err)
	assert.Empty(t, groups, "consume's own consumer group is removed when it exits")
}

func TestConfigPrintRedactsRedisPassword(t *testing.T) {
	t.Setenv("REDIS_PASSWORD", "hunter2")
	cfg := writeFile(t, "eventbus.yaml", "backend: redis\nredis:\n  password: ${REDIS_PASSWORD}\n")
	code, out, errOut := cli(t, context.Background(), "", "config", "print", "--config", cfg)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.NotContains(t, out, "hunter2")
	assert.Contains(t, out, "[redacted]")
	assert.Contains(t, out, "  consumer:\n    start_from: oldest\n    max_in_flight: 1\n    nack_delay: 100ms\n    drain_timeout: 10s\n")
	assert.Contains(t, out, "    read_batch: 100\n")
	assert.Contains(t, out, "  publisher:\n    retention: 168h0m0s\n    max_len: 0\n    max_message_bytes: 1048576\n")
}
