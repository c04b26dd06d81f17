package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestConformanceCommand runs `eventbus conformance` as an operator would, against each
// backend: it prints one row per check and exits 0, and leaves nothing behind.
func TestConformanceCommand(t *testing.T) {
	var kafkaAddr string
	// Other packages' tests use the shared brokers with the default prefix at the same time.
	prefix := "eventbus-cli-conformance-" + strings.ToLower(watermill.NewShortUUID()) + "-"
	for _, tc := range []struct {
		backend string
		yaml    func(t *testing.T) string
		left    func(t *testing.T) int // what the run left on the broker
	}{
		{"kafka", func(t *testing.T) string {
			kafkaAddr = brokertest.StartKafka(t, 1)
			return "backend: kafka\n" + brokertest.KafkaYAML(kafkaAddr)
		}, func(t *testing.T) int {
			admin, err := sarama.NewClusterAdmin([]string{kafkaAddr}, sarama.NewConfig())
			require.NoError(t, err)
			defer admin.Close()
			topics, err := admin.ListTopics()
			require.NoError(t, err)
			n := 0
			for name := range topics {
				if strings.HasPrefix(name, prefix) {
					t.Logf("topic left: %s", name)
					n++
				}
			}
			return n
		}},
		{"redis", func(t *testing.T) string {
			brokertest.Redis(t)
			return "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n"
		}, func(t *testing.T) int {
			keys, err := brokertest.Redis(t).Keys(context.Background(), prefix+"*").Result()
			require.NoError(t, err)
			return len(keys)
		}},
		{"rabbitmq", nil, nil},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			var vhost string
			if tc.yaml == nil {
				vhost = brokertest.RabbitMQVhost(t)
				tc.yaml = func(*testing.T) string { return "backend: rabbitmq\nrabbitmq:\n  vhost: " + vhost + "\n" }
				tc.left = func(t *testing.T) int {
					out := strings.TrimSpace(string(brokertest.RabbitMQCtl(t, "list_queues", "-q", "-p", vhost, "name")))
					if out == "" || out == "name" {
						return 0
					}
					t.Logf("queues left: %s", out)
					return len(strings.Split(out, "\n")) - 1
				}
			}
			cfg := writeFile(t, "eventbus.yaml", tc.yaml(t))
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			code, out, errOut := cli(t, ctx, "", "conformance", "--config", cfg, "--topic-prefix", prefix)
			require.Equal(t, 0, code, "stdout:\n%s\nstderr: %s", out, errOut)
			assert.Regexp(t, `(?m)^CHECK\s+BACKEND\s+RESULT\s+TIME\s+DETAIL$`, out)
			for _, c := range bustest.Checks() {
				assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(c.Name)+`\s+`+tc.backend+`\s+(pass|skip)\s+\S+`, out)
			}
			assert.Regexp(t, `(?m)^\d+ passed, 0 failed, \d+ skipped$`, out)
			assert.Regexp(t, `(?m)^ConsumerGroups\s+\S+\s+pass`, out, "every backend's default config shares a group's work")
			if tc.left != nil {
				assert.Zero(t, tc.left(t), "the run removes the topics and queues it made")
			}
		})
	}
}

// TestConformanceCommandReports: --json gives one record per selected check; a deployment
// that does not answer fails every check and the command exits 1.
func TestConformanceCommandReports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := writeFile(t, "eventbus.yaml", "backend: kafka\n"+brokertest.KafkaYAML(brokertest.StartKafka(t, 1)))
	code, out, errOut := cli(t, ctx, "", "conformance", "--config", cfg, "--json", "--run", "^(Delivery|Replay)$")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var results []bustest.Result
	require.NoError(t, json.Unmarshal([]byte(out), &results), out)
	require.Len(t, results, 2)
	assert.Equal(t, "Delivery", results[0].Check)
	assert.Equal(t, bustest.Pass, results[0].Outcome)
	assert.Equal(t, "kafka", results[0].Backend)
	assert.Equal(t, bus.Replay, results[1].Capability)
	assert.True(t, results[1].Declared)

	dead := writeFile(t, "dead.yaml", "backend: redis\nredis:\n  addrs: [127.0.0.1:1]\n  dial_timeout: 200ms\n")
	code, out, errOut = cli(t, ctx, "", "conformance", "--config", dead, "--run", "^Delivery$")
	assert.Equal(t, 1, code)
	assert.Regexp(t, `(?m)^Delivery\s+redis\s+fail\s+\S+\s+open a bus`, out)
	assert.Contains(t, errOut, "1 of 1 checks failed on redis")

	code, _, errOut = cli(t, ctx, "", "conformance", "--config", cfg, "--run", "NoSuchCheck")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `--run "NoSuchCheck" matches no check; the checks are Delivery, `)
}
