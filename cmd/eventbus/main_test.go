package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka/embedded"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// cli runs one command line in-process and returns its exit code, stdout and stderr.
func cli(t *testing.T, ctx context.Context, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// TestDemo runs the README's first command as a fresh checkout would: no config file, so the
// demo starts its own embedded Kafka broker.
func TestDemo(t *testing.T) {
	t.Chdir(t.TempDir()) // no ./eventbus.yaml here
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code, out, errOut := cli(t, ctx, "", "demo", "--events", "120", "--keys", "10")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "eventbus demo on kafka")
	assert.Contains(t, out, "published 120 events to 2 topics")
	assert.Regexp(t, `handled\s+120 events`, out)
	assert.Regexp(t, `\.enrollments\s+80\s+80\s+10\s+held`, out)
	assert.Regexp(t, `\.certificates\s+40\s+40\s+10\s+held`, out)
}

func TestPublishThenConsumeRoundTrip(t *testing.T) {
	broker, err := embedded.Start(embedded.Options{})
	require.NoError(t, err)
	defer broker.Close()
	cfg := writeFile(t, "eventbus.yaml", fmt.Sprintf("kafka:\n  brokers: [%s]\n", broker.Addrs()[0]))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	code, out, errOut := cli(t, ctx, "", "publish", "--config", cfg, "--topic", "enrollments",
		"--type", "org.openedx.learning.course.enrollment.created.v1", "--source", "openedx/lms/web",
		"--key", "user-42", "--id", "evt-1", "--header", "traceparent=00-abc-01", "--data", `{"user_id": 42}`)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, "published evt-1 to enrollments\n", out)

	code, out, errOut = cli(t, ctx, "{\"n\":1}\n\n{\"n\":2}\n", "publish", "--config", cfg, "--topic", "enrollments",
		"--type", "t.v1", "--source", "s", "--key", "user-7")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Equal(t, 2, strings.Count(out, "published "), out)

	code, out, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", "enrollments", "--from", "oldest", "--count", "3", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)

	var first consumedEvent
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	assert.Equal(t, "enrollments", first.Topic)
	assert.Equal(t, "evt-1", first.ID)
	assert.Equal(t, "user-42", first.Key)
	assert.JSONEq(t, `{"user_id": 42}`, string(first.Payload))
	assert.Equal(t, "evt-1", first.Headers["ce_id"])
	assert.Equal(t, "org.openedx.learning.course.enrollment.created.v1", first.Headers["ce_type"])
	assert.Equal(t, "openedx/lms/web", first.Headers["ce_source"])
	assert.Equal(t, "1.0", first.Headers["ce_specversion"])
	assert.Equal(t, "application/json", first.Headers["content-type"])
	assert.Equal(t, "00-abc-01", first.Headers["traceparent"])
	_, err = time.Parse(time.RFC3339Nano, first.Headers["ce_time"])
	assert.NoError(t, err)

	var third consumedEvent
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &third))
	assert.Equal(t, "user-7", third.Key)
	assert.JSONEq(t, `{"n":2}`, string(third.Payload))

	// A named group commits what it acknowledged: a second run of the same group goes on from there.
	code, out, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", "enrollments", "--group", "svc", "--count", "1", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, `"id":"evt-1"`)
	code, out, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", "enrollments", "--group", "svc", "--count", "1", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.NotContains(t, out, `"id":"evt-1"`)
	assert.Contains(t, out, `"key":"user-7"`)

	// A fourth event is not there: consume says so and fails instead of hanging.
	code, _, errOut = cli(t, ctx, "", "consume", "--config", cfg, "--topic", "enrollments", "--count", "4", "--timeout", "3s")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "received 3 of 4 events from enrollments within 3s")
}

func TestPublishRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--topic", "t", "--type", "x", "--source", "s", "--data", "{not json"}, "event 1: data is not valid JSON"},
		{[]string{"publish", "--topic", "t", "--source", "s", "--data", "{}"}, `required flag(s) "type" not set`},
		{[]string{"publish", "--topic", "t", "--type", "x", "--source", "s", "--header", "novalue", "--data", "{}"}, `--header "novalue": want name=value`},
		{[]string{"publish", "--topic", "t", "--type", "x", "--source", "s"}, "nothing to publish"},
		{[]string{"consume", "--topic", "t", "--from", "sideways"}, `--from "sideways": open kafka: kafka position "sideways": want partition:offset`},
	} {
		code, _, errOut := cli(t, ctx, "", tc.args...)
		assert.Equal(t, 1, code, tc.args)
		assert.Contains(t, errOut, tc.want, tc.args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "eventbus.yaml", `backend: kafka
kafka:
  brokers: []
  consumer_grop: lms
  sasl:
    mechanism: PLAIN
    username: edx
    password: ${EVENTBUS_TEST_UNSET_PASSWORD}
router:
  close_timeout: soon
`)
	code, out, errOut := cli(t, context.Background(), "", "config", "validate", "--config", path)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	want := []string{
		path + `:4: kafka.consumer_grop: unknown key (did you mean "consumer_group"?)`,
		path + ":8: kafka.sasl.password: environment variable EVENTBUS_TEST_UNSET_PASSWORD is not set (set it, or write ${EVENTBUS_TEST_UNSET_PASSWORD:-default})",
		path + ":3: kafka.brokers: must list at least one host:port",
		path + `:10: router.close_timeout: "soon" is not a duration: use Go syntax such as 500ms, 30s or 5m`,
	}
	for i := range want {
		want[i] = "eventbus: " + want[i]
	}
	assert.Equal(t, want, lines)
	assert.NotContains(t, errOut, "panic")
}

// TestConfigValidateNamesRenamedKeys: a file written for an earlier version fails at each old
// key's line, naming the key that replaced it.
func TestConfigValidateNamesRenamedKeys(t *testing.T) {
	path := writeFile(t, "eventbus.yaml", `backend: kafka
kafka:
  initial_offset: newest
  producer: {acks: all}
  consumer: {nack_resend_delay: 1s}
`)
	code, out, errOut := cli(t, context.Background(), "", "config", "validate", "--config", path)
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	want := []string{
		path + ":3: kafka.initial_offset: renamed to kafka.consumer.start_from",
		path + ":4: kafka.producer: renamed to kafka.publisher",
		path + ":5: kafka.consumer.nack_resend_delay: renamed to kafka.consumer.nack_delay",
	}
	for i := range want {
		want[i] = "eventbus: " + want[i]
	}
	assert.Equal(t, want, strings.Split(strings.TrimSpace(errOut), "\n"))
}

func TestConfigValidateUnknownBackendAndMissingFile(t *testing.T) {
	path := writeFile(t, "eventbus.yaml", "backend: kafak\n")
	code, _, errOut := cli(t, context.Background(), "", "config", "validate", "--config", path)
	assert.Equal(t, 1, code)
	assert.Regexp(t, regexp.QuoteMeta(path)+`:1: backend: unknown backend "kafak" \(did you mean kafka\?\): registered backends are \[kafka.*\]`, errOut)

	code, _, errOut = cli(t, context.Background(), "", "config", "validate", "--config", "/nonexistent/eventbus.yaml")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no such file or directory")

	code, out, _ := cli(t, context.Background(), "", "config", "validate", "--config", writeFile(t, "ok.yaml", "kafka:\n  brokers: [k1:9092]\n"))
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "valid (backend kafka)")
}

func TestConfigPrintRedactsSecretsAndShowsDefaults(t *testing.T) {
	t.Setenv("EVENTBUS_TEST_PASSWORD", "hunter2-secret")
	t.Setenv("EVENTBUS_TEST_REGISTRY_PASSWORD", "registry-secret-7")
	path := writeFile(t, "eventbus.yaml", `kafka:
  brokers: [k1:9092]
  sasl:
    mechanism: SCRAM-SHA-512
    username: edx
    password: ${EVENTBUS_TEST_PASSWORD}
  topics: {retention: 72h}
schemas:
  mode: openedx
  catalog: schemas
  registry: {url: "https://registry.example:8081", username: edx, password: "${EVENTBUS_TEST_REGISTRY_PASSWORD}"}
`)
	code, out, errOut := cli(t, context.Background(), "", "config", "print", "--config", path)
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, out+errOut, "hunter2-secret")
	assert.NotContains(t, out+errOut, "registry-secret-7")
	assert.Contains(t, out, "\nschemas:\n  mode: openedx\n", "the schemas section is shown")
	assert.Contains(t, out, "    url: https://registry.example:8081\n    username: edx\n    password: '[redacted]'\n")
	assert.Contains(t, out, "password: '[redacted]'")
	assert.Contains(t, out, "acks: all", "defaults are shown")
	assert.Contains(t, out, "  publisher:\n    acks: all\n")
	assert.Contains(t, out, "    max_message_bytes: 1000000\n")
	assert.Contains(t, out, "  consumer:\n    start_from: oldest\n    max_in_flight: 1\n    nack_delay: 100ms\n    drain_timeout: 5s\n")
	assert.Contains(t, out, "close_timeout: 30s")
	assert.Contains(t, out, "- k1:9092")
	assert.Contains(t, out, "    retention: 72h0m0s\n    retention_bytes: 0\n", "the retention created topics get")
}

func TestDevServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	var out brokertest.SyncBuffer
	var errOut bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"dev", "--port", "0", "--data-dir", dir}, strings.NewReader(""), &out, &errOut)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "listening on 127.0.0.1:") }, 30*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop on cancel")
	}
	assert.Contains(t, out.String(), "broker stopped")
}
