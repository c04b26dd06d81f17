package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/internal/brokertest"
)

var cliBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// removeBinary removes the built CLI; TestMain calls it after the tests.
func removeBinary() {
	if cliBinary.dir != "" {
		_ = os.RemoveAll(cliBinary.dir)
	}
}

// eventbusBinary builds the CLI once per test run, for tests of what only a process shows:
// exit codes, signals, output as it happens.
func eventbusBinary(t *testing.T) string {
	t.Helper()
	cliBinary.once.Do(func() {
		cliBinary.dir, cliBinary.err = os.MkdirTemp("", "eventbus-cli-test-")
		if cliBinary.err != nil {
			return
		}
		cliBinary.path = filepath.Join(cliBinary.dir, "eventbus")
		out, err := exec.Command("go", "build", "-o", cliBinary.path, ".").CombinedOutput()
		if err != nil {
			cliBinary.err = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, cliBinary.err)
	return cliBinary.path
}

// runBinary runs the CLI to its end and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, eventbusBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		require.NoError(t, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func decodeLines(t *testing.T, out string) []consumedEvent {
	t.Helper()
	var evs []consumedEvent
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ev consumedEvent
		require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
		evs = append(evs, ev)
	}
	return evs
}

// publish sends a line at a time through one publish process, waiting for each "published"
// line before writing the next: it proves that publish sends as it reads, not at EOF.
func publishStreaming(t *testing.T, cfg, topic string, lines ...string) {
	t.Helper()
	cmd := exec.Command(eventbusBinary(t), "publish", "--config", cfg, "--topic", topic, "--type", "t.v1", "--source", "test", "--key", "k")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var errOut brokertest.SyncBuffer
	cmd.Stderr = &errOut
	require.NoError(t, cmd.Start())
	got := bufio.NewScanner(stdout)
	for _, l := range lines {
		_, err := io.WriteString(stdin, l+"\n")
		require.NoError(t, err)
		require.True(t, got.Scan(), "no output for %s; stderr: %s", l, errOut.String())
		assert.Contains(t, got.Text(), "published ")
	}
	require.NoError(t, stdin.Close())
	require.NoError(t, cmd.Wait(), errOut.String())
}

func TestConsumeFromAndExitAtEndOnKafka(t *testing.T) {
	cfg := writeFile(t, "eventbus.yaml", brokertest.KafkaYAML(brokertest.StartKafka(t, 1)))
	publishStreaming(t, cfg, "orders", `{"n":1}`, `{"n":2}`, `{"n":3}`)

	code, out, errOut := runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", "earliest", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	all := decodeLines(t, out)
	require.Len(t, all, 3)
	for i, ev := range all {
		assert.Equal(t, "kafka", ev.Backend)
		assert.Equal(t, fmt.Sprintf("0:%d", i), ev.Position)
		_, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		assert.NoError(t, err, "broker timestamp %q", ev.Timestamp)
		for h := range ev.Headers {
			assert.False(t, strings.HasPrefix(h, "_watermill"), "internal header %s shown", h)
		}
		ct, err := time.Parse(time.RFC3339Nano, ev.Headers["ce_time"])
		require.NoError(t, err)
		assert.Equal(t, ct.UTC().Format(time.RFC3339Nano), ev.Headers["ce_time"])
	}

	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", "0:1", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	from1 := decodeLines(t, out)
	require.Len(t, from1, 2)
	assert.Equal(t, []string{"0:1", "0:2"}, []string{from1[0].Position, from1[1].Position})

	// By time: every record stamped at or after the third's timestamp, the third included.
	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", all[2].Timestamp, "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	byTime := decodeLines(t, out)
	require.NotEmpty(t, byTime)
	assert.Equal(t, "0:2", byTime[len(byTime)-1].Position)
	for _, ev := range byTime {
		assert.GreaterOrEqual(t, ev.Timestamp, all[2].Timestamp)
	}

	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", "latest", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, out, "nothing is backlog for a group that starts at the end")

	code, _, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", "3:0", "--count", "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "topic orders has partitions 0 to 0")
}

func TestExitCodes(t *testing.T) {
	cfg := writeFile(t, "eventbus.yaml", brokertest.KafkaYAML(brokertest.StartKafka(t, 1)))
	publishStreaming(t, cfg, "orders", `{"n":1}`)

	// Ctrl-C before --count events arrived: 130, as a shell reports a process stopped by SIGINT.
	cmd := exec.Command(eventbusBinary(t), "consume", "--config", cfg, "--topic", "orders", "--count", "5")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var errOut brokertest.SyncBuffer
	cmd.Stderr = &errOut
	require.NoError(t, cmd.Start())
	got := bufio.NewScanner(stdout)
	require.True(t, got.Scan(), "no event printed; stderr: %s", errOut.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	for got.Scan() {
	}
	_ = cmd.Wait()
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), errOut.String())
	assert.NotContains(t, errOut.String(), "eventbus: ", "an interrupt is not an error")

	// A broker that cannot be reached is a failure, for publish and for consume.
	down := writeFile(t, "down.yaml", "kafka:\n  brokers: [127.0.0.1:1]\n  dial_timeout: 1s\n")
	code, _, errOut2 := runBinary(t, "", "publish", "--config", down, "--topic", "t", "--type", "x", "--source", "s", "--data", "{}")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut2, "127.0.0.1:1")
	code, _, errOut2 = runBinary(t, "", "consume", "--config", down, "--topic", "t", "--count", "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut2, "127.0.0.1:1")

	for _, yaml := range []string{
		"backend: redis\nredis:\n  addrs: [127.0.0.1:1]\n",
		"backend: rabbitmq\nrabbitmq:\n  host: 127.0.0.1\n  port: 1\n",
	} {
		code, _, errOut2 = runBinary(t, "", "consume", "--config", writeFile(t, "down.yaml", yaml), "--topic", "t", "--count", "1")
		assert.Equal(t, 1, code, yaml)
		assert.Contains(t, errOut2, "127.0.0.1:1: connect: connection refused", yaml)
		// go-redis' own lines come through the CLI's logger, not in a format of their own.
		assert.NotRegexp(t, `(?m)^redis: \d{4}/`, errOut2)
	}

	// A bad line stops publish at that line, after the lines before it were sent.
	code, out, errOut2 := runBinary(t, "{\"n\":1}\n\nnot json\n{\"n\":3}\n", "publish", "--config", cfg, "--topic", "orders", "--type", "x", "--source", "s")
	assert.Equal(t, 1, code)
	assert.Equal(t, 1, strings.Count(out, "published "), out)
	assert.Contains(t, errOut2, "standard input line 3: not valid JSON; publish reads one event per line")

	code, _, errOut2 = runBinary(t, "", "consume", "--log-level", "loud", "--topic", "t")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut2, `--log-level "loud": want debug, info, warn or error`)
}

// go-redis prints some lines of its own (here: a sub-millisecond expiry it rounds up); they go
// through --log-level's logger, at warn.
func TestGoRedisLogsFollowLogLevel(t *testing.T) {
	c := brokertest.Redis(t)
	key := "eventbus-test:" + t.Name()
	t.Cleanup(func() { c.Del(context.Background(), key) })
	for _, tc := range []struct {
		level string
		shown bool
	}{{"warn", true}, {"error", false}} {
		g := &globals{logLevel: tc.level}
		cmd := newRootCmd()
		var errOut bytes.Buffer
		cmd.SetErr(&errOut)
		_, err := g.logger(cmd)
		require.NoError(t, err)
		require.NoError(t, c.Set(context.Background(), key, "v", 500*time.Microsecond).Err())
		if tc.shown {
			assert.Regexp(t, `level=WARN msg="specified duration is 500µs, but minimal supported value is 1ms.*component=go-redis`, errOut.String())
		} else {
			assert.Empty(t, errOut.String())
		}
	}
}

func TestInvalidLogLevelIsAnErrorForEveryCommand(t *testing.T) {
	code, _, errOut := cli(t, context.Background(), "", "config", "validate", "--log-level", "loud",
		"--config", writeFile(t, "ok.yaml", "kafka:\n  brokers: [k1:9092]\n"))
	assert.Equal(t, 1, code)
	assert.Equal(t, "eventbus: --log-level \"loud\": want debug, info, warn or error\n", errOut)
}

func TestConsumeFromAndExitAtEndOnRedis(t *testing.T) {
	brokertest.Redis(t)
	cfg := writeFile(t, "eventbus.yaml", "backend: redis\nredis:\n  addrs: ["+brokertest.RedisAddr+"]\n")
	topic := brokertest.RedisStream(t, "eventbus-test-cli")
	publishStreaming(t, cfg, topic, `{"n":1}`, `{"n":2}`, `{"n":3}`)

	code, out, errOut := runBinary(t, "", "consume", "--config", cfg, "--topic", topic, "--from", "beginning", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	all := decodeLines(t, out)
	require.Len(t, all, 3)
	for _, ev := range all {
		assert.Equal(t, "redis", ev.Backend)
		assert.Regexp(t, `^\d+-\d+$`, ev.Position)
		_, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		assert.NoError(t, err)
		ct, err := time.Parse(time.RFC3339Nano, ev.Headers["ce_time"])
		require.NoError(t, err)
		assert.Equal(t, ct.UTC().Format(time.RFC3339Nano), ev.Headers["ce_time"])
		for h := range ev.Headers {
			assert.False(t, strings.HasPrefix(h, "_watermill"), "internal header %s shown", h)
		}
	}

	// From the second entry's id: the second and third, the position's entry included.
	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", topic, "--from", all[1].Position, "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	got := decodeLines(t, out)
	require.Len(t, got, 2)
	assert.Equal(t, all[1].Position, got[0].Position)
	assert.Equal(t, all[2].Position, got[1].Position)

	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", topic, "--from", all[2].Timestamp, "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	got = decodeLines(t, out)
	require.NotEmpty(t, got)
	assert.Equal(t, all[2].Position, got[len(got)-1].Position)

	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", topic, "--from", "end", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, out)

	code, _, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", topic, "--from", "0:12", "--count", "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `--from "0:12"`)
	assert.Contains(t, errOut, "want a stream id such as 1732363200000-0")
}

// A new RabbitMQ group's queue holds only what is published after it exists: consume says so
// at once instead of waiting in silence, and refuses a start it cannot honour.
func TestConsumeOnRabbitMQSaysWhatItCannotShow(t *testing.T) {
	vhost := brokertest.RabbitMQVhost(t)
	cfg := writeFile(t, "eventbus.yaml", "backend: rabbitmq\nrabbitmq:\n  vhost: "+vhost+"\n  publisher: {declare_groups: [eventbus]}\n")
	publishStreaming(t, cfg, "orders", `{"n":1}`, `{"n":2}`)

	code, out, errOut := runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, out)
	assert.Regexp(t, `note: group eventbus-cli-\S+ has no queue for orders yet; subscribing declares \S+ now, and messages published before it existed are not in it. To read those, consume as a group whose queue publishers declare \(rabbitmq.publisher.declare_groups: eventbus\), or set rabbitmq.queue.type: stream`, errOut)

	// The configured group's queue was declared by publish: it holds both, and --exit-at-end
	// stops after its depth at start.
	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--group", "eventbus", "--from", "oldest", "--exit-at-end")
	require.Equal(t, 0, code, errOut)
	got := decodeLines(t, out)
	require.Len(t, got, 2)
	assert.Equal(t, "rabbitmq", got[0].Backend)
	assert.Regexp(t, `#\d+$`, got[0].Position)
	ct, err := time.Parse(time.RFC3339Nano, got[0].Headers["ce_time"])
	require.NoError(t, err)
	assert.Equal(t, ct.UTC().Format(time.RFC3339Nano), got[0].Headers["ce_time"])
	assert.NotContains(t, errOut, "has no queue")
	assert.Contains(t, errOut, "note: --from oldest: rabbitmq keeps no history to start from (only with queue.type: stream;")

	code, _, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", "2026-01-01T00:00:00Z", "--count", "1")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `--from "2026-01-01T00:00:00Z"`)
	assert.Contains(t, errOut, "set queue.type: stream")
	assert.Contains(t, errOut, "not supported")
}

// On a stream queue RabbitMQ keeps history: --from takes a stream offset or a time.
func TestConsumeFromOnRabbitMQStream(t *testing.T) {
	vhost := brokertest.RabbitMQVhost(t)
	cfg := writeFile(t, "eventbus.yaml", "backend: rabbitmq\nrabbitmq:\n  vhost: "+vhost+"\n  queue:\n    type: stream\n")
	before := time.Now().Add(-time.Second)
	publishStreaming(t, cfg, "orders", `{"n":1}`, `{"n":2}`, `{"n":3}`)

	code, out, errOut := runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--count", "3", "--timeout", "30s")
	require.Equal(t, 0, code, errOut)
	all := decodeLines(t, out)
	require.Len(t, all, 3)
	assert.Regexp(t, `@\d+$`, all[1].Position)

	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", all[1].Position, "--count", "2", "--timeout", "30s")
	require.Equal(t, 0, code, errOut)
	got := decodeLines(t, out)
	require.Len(t, got, 2)
	assert.Equal(t, all[1].Position, got[0].Position)
	assert.JSONEq(t, `{"n":3}`, string(got[1].Payload))

	// By time (whole seconds on RabbitMQ): from before the first, all three; from an hour
	// ahead, none.
	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", before.Format(time.RFC3339), "--count", "3", "--timeout", "30s")
	require.Equal(t, 0, code, errOut)
	assert.Len(t, decodeLines(t, out), 3)
	code, out, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--from", time.Now().Add(time.Hour).Format(time.RFC3339), "--count", "1", "--timeout", "2s")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "received 0 of 1 events from orders within 2s")

	code, _, errOut = runBinary(t, "", "consume", "--config", cfg, "--topic", "orders", "--exit-at-end")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--exit-at-end: the end of orders: rabbitmq: the end of a stream queue is not known to AMQP clients")
}
