package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// TestConsumerOnEveryBackend runs the example as its doc comment promises: the same binary,
// a different config file per broker. On each it handles a published enrollment and exits
// cleanly on SIGTERM.
func TestConsumerOnEveryBackend(t *testing.T) {
	bin := brokertest.BuildBinary(t, "consumer")

	for _, tc := range []struct {
		backend string
		config  func(t *testing.T) (yaml, topic string)
	}{
		{"kafka", func(t *testing.T) (string, string) {
			return brokertest.KafkaYAML(brokertest.StartKafka(t, 1)), "enrollments"
		}},
		{"redis", func(t *testing.T) (string, string) {
			return "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n", brokertest.RedisStream(t, "eventbus-example")
		}},
		{"rabbitmq", func(t *testing.T) (string, string) {
			return fmt.Sprintf("backend: rabbitmq\nrabbitmq:\n  vhost: %s\n  publisher: {declare_groups: [eventbus]}\n", brokertest.RabbitMQVhost(t)), "enrollments"
		}},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			yaml, topic := tc.config(t)
			path := filepath.Join(t.TempDir(), "eventbus.yaml")
			require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
			runConsumer(t, bin, path, topic)
		})
	}
}

func runConsumer(t *testing.T, bin, cfgPath, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	b, err := bus.Open(ctx, cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	// Published before the consumer starts: its group reads from the oldest (Kafka, Redis), and
	// on RabbitMQ publish declares the configured group's queue.
	id := "evt-" + watermill.NewShortUUID()
	require.NoError(t, b.Publish(ctx, topic, bus.Event{
		ID: id, Type: "org.openedx.learning.course.enrollment.created.v1", Source: "test", Key: "user-1",
		Data: map[string]any{"user_id": 1, "course_id": "course-v1:edX+DemoX+Demo"},
	}))

	cmd := exec.CommandContext(ctx, bin, "-config", cfgPath, "-topic", topic)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var logs brokertest.SyncBuffer
	handled, readAll := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readAll)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			_, _ = logs.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "enrollment") && strings.Contains(sc.Text(), id) {
				once.Do(func() { close(handled) })
			}
		}
	}()
	select {
	case <-handled:
	case <-ctx.Done():
		t.Fatalf("the consumer did not handle event %s; its log:\n%s", id, logs.String())
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	<-readAll // the pipe's end: Wait closes it, so every line is read first
	err = cmd.Wait()
	assert.NoError(t, err, "the consumer did not exit cleanly on SIGTERM; its log:\n%s", logs.String())
	assert.Contains(t, logs.String(), `user=1 course=course-v1:edX+DemoX+Demo`)
}
