package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestBenchCommand runs a tiny `eventbus bench --raw --json` on each backend and checks the
// report: every client published and consumed the whole workload, the ratios name each raw
// client, the durability settings are reported, and the run removed its topics. It asserts
// no timings.
func TestBenchCommand(t *testing.T) {
	const workloadYAML = "bench: {payload_size: 64, messages: 300, producers: 3, batch: 2, consumers: 2, topics: 2, keys: 4, partitions: 2, rounds: 2, timeout: 1m}\n"
	for _, tc := range []struct {
		backend string
		yaml    func(t *testing.T) string
		raws    []string
		left    func(t *testing.T, prefix string) int
	}{
		{"kafka", func(t *testing.T) string {
			return "backend: kafka\n" + brokertest.KafkaYAML(brokertest.StartKafka(t, 1))
		}, []string{"sarama", "franz-go"}, nil},
		{"redis", func(t *testing.T) string {
			brokertest.Redis(t)
			return "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n"
		}, []string{"go-redis"}, func(t *testing.T, prefix string) int {
			keys, err := brokertest.Redis(t).Keys(context.Background(), prefix+"*").Result()
			require.NoError(t, err)
			return len(keys)
		}},
		{"rabbitmq", nil, []string{"amqp091-go"}, nil},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			if tc.yaml == nil {
				vhost := brokertest.RabbitMQVhost(t)
				tc.yaml = func(*testing.T) string { return "backend: rabbitmq\nrabbitmq:\n  vhost: " + vhost + "\n" }
				tc.left = func(t *testing.T, prefix string) int {
					out := string(brokertest.RabbitMQCtl(t, "list_queues", "-q", "-p", vhost, "name"))
					n := 0
					for _, q := range strings.Fields(out) {
						if strings.Contains(q, prefix) {
							t.Logf("queue left: %s", q)
							n++
						}
					}
					return n
				}
			}
			cfg := writeFile(t, "eventbus.yaml", tc.yaml(t)+workloadYAML)
			prefix := "eventbus-cli-bench-" + strings.ToLower(watermill.NewShortUUID()) + "-"
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			code, out, errOut := cli(t, ctx, "", "bench", "--config", cfg, "--raw", "--json", "--quiet", "--topic-prefix", prefix)
			require.Equal(t, 0, code, "stdout:\n%s\nstderr: %s", out, errOut)
			var rep struct {
				Backend  string `json:"backend"`
				Workload struct {
					Messages int `json:"messages"`
				} `json:"workload"`
				Durability map[string]string `json:"durability"`
				Results    []struct {
					Client      string           `json:"client"`
					Published   int64            `json:"published"`
					Unique      int64            `json:"unique"`
					Consumed    int64            `json:"consumed"`
					PublishRate float64          `json:"publish_rate"`
					ConsumeRate float64          `json:"consume_rate"`
					Latency     map[string]int64 `json:"latency_us"`
				} `json:"results"`
				Ratios []struct {
					Raw     string  `json:"raw"`
					Publish float64 `json:"publish"`
					Consume float64 `json:"consume"`
				} `json:"ratios"`
				MaxRSS int64 `json:"max_rss_bytes"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
			assert.Equal(t, tc.backend, rep.Backend)
			assert.Equal(t, 300, rep.Workload.Messages, "the workload as run")
			want := append([]string{"eventbus"}, tc.raws...)
			require.Len(t, rep.Results, len(want), out)
			for i, r := range rep.Results {
				assert.Equal(t, want[i], r.Client)
				assert.EqualValues(t, 2*300, r.Published, "two rounds of 300 events: %s", r.Client)
				assert.Equal(t, r.Published, r.Unique, "every event reached a handler: %s", r.Client)
				assert.GreaterOrEqual(t, r.Consumed, r.Unique, r.Client)
				assert.Positive(t, r.PublishRate, r.Client)
				assert.Positive(t, r.ConsumeRate, r.Client)
				for _, k := range []string{"p50", "p95", "p99", "p99_9", "max"} {
					assert.Contains(t, r.Latency, k)
				}
				assert.LessOrEqual(t, r.Latency["p50"], r.Latency["max"], r.Client)
			}
			require.Len(t, rep.Ratios, len(tc.raws))
			for i, ra := range rep.Ratios {
				assert.Equal(t, tc.raws[i], ra.Raw)
				assert.Positive(t, ra.Publish)
				assert.Positive(t, ra.Consume)
			}
			assert.NotEmpty(t, rep.Durability)
			assert.Positive(t, rep.MaxRSS, "VmHWM is read on Linux")
			if tc.left != nil {
				assert.Zero(t, tc.left(t, prefix), "the run removes what it created; its stderr:\n%s", errOut)
			}
		})
	}
}

// TestBenchCommandRejectsBadWorkload: a bad bench: section or flag is reported with its place
// before anything connects.
func TestBenchCommandRejectsBadWorkload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := writeFile(t, "eventbus.yaml", "backend: redis\nredis: {addrs: [127.0.0.1:1]}\nbench:\n  payload_size: 8\n  producers: 0\n  bogus: 1\n")
	code, _, errOut := cli(t, ctx, "", "bench", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "eventbus.yaml:6: bench.bogus: unknown key")
	assert.Contains(t, errOut, "eventbus.yaml:4: bench.payload_size: must be at least 16 bytes")
	assert.Contains(t, errOut, "eventbus.yaml:5: bench.producers: must be at least 1, got 0")

	good := writeFile(t, "good.yaml", "backend: redis\nredis: {addrs: [127.0.0.1:1]}\n")
	code, _, errOut = cli(t, ctx, "", "bench", "--config", good, "--messages", "-5")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "bench workload (flags): messages: must be at least 1, got -5")
}

// TestBenchBacklogOnRabbitMQ: a backlog workload publishes before anything consumes, so the
// consumers' group must have its queue first: without it, since the publisher declares no queue
// of its own group, every publish was unroutable and make bench failed.
func TestBenchBacklogOnRabbitMQ(t *testing.T) {
	vhost := brokertest.RabbitMQVhost(t)
	cfg := writeFile(t, "eventbus.yaml", "backend: rabbitmq\nrabbitmq:\n  vhost: "+vhost+"\n"+
		"bench: {payload_size: 64, messages: 200, producers: 2, consumers: 1, rounds: 1, backlog: true, timeout: 1m}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, errOut := cli(t, ctx, "", "bench", "--config", cfg, "--raw", "--json", "--quiet")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr: %s", out, errOut)
	var rep struct {
		Results []struct {
			Client    string `json:"client"`
			Published int64  `json:"published"`
			Unique    int64  `json:"unique"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.NotEmpty(t, rep.Results)
	for _, r := range rep.Results {
		assert.Equal(t, int64(200), r.Published, r.Client)
		assert.Equal(t, int64(200), r.Unique, r.Client)
	}
}
