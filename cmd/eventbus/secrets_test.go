package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// cliProcessArgs, when set in the environment, makes the test binary run one eventbus command
// line and exit instead of running tests: TestNoCommandPrintsASecret runs the CLI as a process
// of its own so that whatever any library writes to the process's stdout and stderr is seen,
// not only what goes through run's writers.
const cliProcessArgs = "EVENTBUS_TEST_CLI_PROCESS_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(cliProcessArgs); args != "" {
		var list []string
		if err := json.Unmarshal([]byte(args), &list); err != nil {
			fmt.Fprintln(os.Stderr, "bad", cliProcessArgs, err)
			os.Exit(3)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		code := run(ctx, list, os.Stdin, os.Stdout, os.Stderr)
		cancel()
		os.Exit(code)
	}
	code := m.Run()
	removeBinary()
	os.Exit(code)
}

// cliProcess runs one command line in a child process with extra environment variables and
// returns its exit code and everything it wrote to stdout and stderr together.
func cliProcess(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	enc, err := json.Marshal(args)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), cliProcessArgs+"="+string(enc))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return code, out.String()
}

// TestNoCommandPrintsASecret runs every command of the CLI, at log level debug, on valid and
// invalid configuration files holding known passwords (in URLs, in password keys, in ${VAR}
// values, in values the loader rejects) and fails if any output holds one of them or a
// distinctive piece of one.
func TestNoCommandPrintsASecret(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the shared Redis and RabbitMQ; skipped under -short")
	}
	// Each secret holds a token of its own (K7Q1, ...) that must never appear, even cut short.
	secrets := map[string]string{
		"kafka":     "kafka-K7Q1/pw?x#y",
		"amqp":      "amqp-R4M9/pw?x#y",
		"amqpField": "amqpf-F2D8:pw",
		"redis":     "redis-D5S3-pw",
		"dedup":     "dedup-U6P2-pw",
		"badURL":    "rmq-B1X4/pw",
		"unterm":    "unterm-T8Z5${abc",
		"badName":   "badname-N3V6${a-b}",
		"env":       "env-E9W7/pw",
	}
	tokens := []string{"K7Q1", "R4M9", "F2D8", "D5S3", "U6P2", "B1X4", "T8Z5", "N3V6", "E9W7"}

	// Kafka with SASL PLAIN, the password handed over in clear: a valid file that works.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(1),
		kfake.EnableSASL(), kfake.Superuser("PLAIN", "lms", secrets["kafka"]))
	require.NoError(t, err)
	defer cluster.Close()

	// RabbitMQ with a user of this test's own whose password holds / ? and #.
	vhost := brokertest.RabbitMQVhost(t)
	user := "eventbus-leak-" + watermill.NewShortUUID()
	brokertest.RabbitMQCtl(t, "add_user", user, secrets["amqp"])
	t.Cleanup(func() { brokertest.RabbitMQCtl(t, "delete_user", user) })
	brokertest.RabbitMQCtl(t, "set_permissions", "-p", vhost, user, ".*", ".*", ".*")
	fieldUser := user + "-f"
	brokertest.RabbitMQCtl(t, "add_user", fieldUser, secrets["amqpField"])
	t.Cleanup(func() { brokertest.RabbitMQCtl(t, "delete_user", fieldUser) })
	brokertest.RabbitMQCtl(t, "set_permissions", "-p", vhost, fieldUser, ".*", ".*", ".*")
	amqpURL := "amqp://" + user + ":" + url.QueryEscape(secrets["amqp"]) + "@" + brokertest.RabbitMQAddr + "/" + url.PathEscape(vhost)

	env := []string{
		"EVENTBUS_LEAK_KAFKA_PW=" + secrets["kafka"],
		"EVENTBUS_LEAK_AMQP_URL=" + amqpURL,
		"EVENTBUS_LEAK_AMQP_PW=" + secrets["amqpField"],
		"EVENTBUS_LEAK_REDIS_PW=" + secrets["redis"],
		"EVENTBUS_LEAK_DEDUP_PW=" + secrets["dedup"],
		"EVENTBUS_LEAK_ENV=" + secrets["env"],
	}
	kafkaBroker := cluster.ListenAddrs()[0]
	kafkaSASL := "kafka:\n  brokers: [" + kafkaBroker + "]\n  sasl:\n    mechanism: PLAIN\n    username: lms\n    password: ${EVENTBUS_LEAK_KAFKA_PW}\n"
	configs := []struct {
		name string
		good bool // valid, and the broker takes the credentials
		yaml string
	}{
		{"kafka SASL PLAIN", true, kafkaSASL},
		{"rabbitmq url", true, "backend: rabbitmq\nrabbitmq:\n  url: ${EVENTBUS_LEAK_AMQP_URL}\n  publisher: {declare_groups: [eventbus]}\n"},
		{"rabbitmq fields", true, "backend: rabbitmq\nrabbitmq:\n  vhost: " + vhost + "\n  username: " + fieldUser + "\n  password: ${EVENTBUS_LEAK_AMQP_PW}\n  publisher: {declare_groups: [eventbus]}\n"},
		{"redis wrong password", false, "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n  username: eventbus-leak\n  password: ${EVENTBUS_LEAK_REDIS_PW}\n"},
		{"dedup store password", false, kafkaSASL +
			"router:\n  dedup:\n    enabled: true\n    store: redis\n    redis:\n      addrs: [" + brokertest.RedisAddr + "]\n      username: eventbus-leak\n      password: ${EVENTBUS_LEAK_DEDUP_PW}\n"},
		{"rabbitmq url with unencoded password", false, "backend: rabbitmq\nrabbitmq:\n  url: amqp://lms:" + secrets["badURL"] + "@" + brokertest.RabbitMQAddr + "/%2f\n"},
		{"rabbitmq tls with amqp url", false, "backend: rabbitmq\nrabbitmq:\n  url: ${EVENTBUS_LEAK_AMQP_URL}\n  tls: {enabled: true}\n"},
		{"unterminated reference in a password", false, "kafka:\n  sasl: {mechanism: PLAIN, username: lms, password: '" + secrets["unterm"] + "'}\n"},
		{"bad variable name in a password", false, "backend: redis\nredis:\n  password: '" + secrets["badName"] + "'\n"},
		{"secret from the environment among other mistakes", false, "kafka:\n  brokers: []\n  brokerz: [x]\n  sasl:\n    mechanism: PLAIN\n    username: lms\n    password: ${EVENTBUS_LEAK_ENV}\n  tls: {ca_file: /nonexistent/ca.pem}\n" +
			"router:\n  dedup:\n    redis: {url: 'redis://:${EVENTBUS_LEAK_ENV}@127.0.0.1:6379'}\n"},
		{"secret in a second document", false, "backend: redis\n---\nredis:\n  password: ${EVENTBUS_LEAK_ENV}\n"},
	}
	topic := "eventbus-leak-" + watermill.NewShortUUID()
	commands := [][]string{
		{"config", "validate"},
		{"config", "print"},
		{"publish", "--topic", topic, "--type", "t.v1", "--source", "leak-test", "--data", `{"n":1}`},
		{"consume", "--topic", topic, "--count", "1", "--timeout", "2s"},
		{"dlq", "list", "--topic", topic, "--wait", "1s"},
		{"demo", "--events", "6", "--keys", "2", "--timeout", "20s"},
	}
	for _, c := range configs {
		path := writeFile(t, "eventbus.yaml", c.yaml)
		valid := false
		for _, args := range commands {
			if args[0] == "demo" && !valid {
				continue // fails at the config, as config validate did; the demo is not cheap
			}
			name := c.name + "/" + strings.Join(args[:2], " ")
			code, out := cliProcess(t, env, append(append([]string{}, args...), "--config", path, "--log-level", "debug")...)
			t.Logf("%s: exit %d, %d bytes of output; last line: %s", name, code, len(out), lastLine(out))
			if args[1] == "validate" {
				valid = code == 0
			}
			if c.good && args[0] != "consume" && args[0] != "dlq" {
				assert.Equal(t, 0, code, "%s: %s", name, out)
			}
			if !c.good && args[0] == "config" && args[1] == "validate" && c.name != "redis wrong password" && c.name != "dedup store password" {
				assert.Equal(t, 1, code, "%s: an invalid file: %s", name, out)
			}
			for _, s := range secrets {
				assert.NotContains(t, out, s, name)
				assert.NotContains(t, out, url.QueryEscape(s), name)
			}
			for _, tok := range tokens {
				assert.NotContains(t, out, tok, name)
			}
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
