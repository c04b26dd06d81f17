// Command enrollment-notifier is a consumer service as it runs in production: one long-lived
// process consuming one topic as a member of a consumer group, scaled by running more copies
// (Kubernetes Deployments in deploy/, scaled on consumer lag by KEDA). It handles
// org.openedx.learning.course.enrollment.created.v1 events and embeds router.Run, which gives it
// /healthz, /readyz and /metrics on router.http.addr (default :8080), tracing, JSON logs, the
// error limit, the kill switch and a graceful drain on SIGTERM.
//
//	go run ./examples/enrollment-notifier -config examples/enrollment-notifier/eventbus.yaml
//	curl localhost:8080/readyz; curl localhost:8080/metrics
//
// The config file picks the broker (Kafka, Redis Streams or RabbitMQ: all three are linked in);
// the in-process Kafka broker is linked too but starts only with kafka.embedded: true.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/ThreeDotsLabs/watermill/message"

	_ "github.com/eventbus-go/eventbus/backends/kafka"
	_ "github.com/eventbus-go/eventbus/backends/kafka/embedded"
	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/router"
)

// The command line and environment the deploy/ manifests use (deploy's test checks them).
const (
	// FlagConfig names the config file; EnvConfig is its environment equivalent.
	FlagConfig = "config"
	EnvConfig  = "EVENTBUS_CONFIG"
	// FlagTopic names the topic to consume; EnvTopic is its environment equivalent.
	FlagTopic = "topic"
	EnvTopic  = "EVENTBUS_TOPIC"
	// DefaultTopic is the topic Open edX publishes enrollment events to.
	DefaultTopic = "learning-course-enrollment-lifecycle"
	// EventType is the event this service acts on; others on the topic are acked and skipped.
	EventType = "org.openedx.learning.course.enrollment.created.v1"
)

type enrollment struct {
	User struct {
		ID       int    `json:"id"`
		Username string `json:"username"`
	} `json:"user"`
	Course struct {
		CourseKey string `json:"course_key"`
	} `json:"course"`
	Mode string `json:"mode"`
}

func main() {
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	configPath := fs.String(FlagConfig, envOr(EnvConfig, config.DefaultFile), "config file (env "+EnvConfig+"; built-in defaults when absent)")
	topic := fs.String(FlagTopic, envOr(EnvTopic, DefaultTopic), "topic to consume (env "+EnvTopic+")")
	_ = fs.Parse(os.Args[1:])

	cfg, err := config.LoadOrDefault(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enrollment-notifier:", err)
		os.Exit(2)
	}
	err = router.Run(context.Background(), cfg, router.Handler{Name: "enrollment-notifier", Topic: *topic, Handle: notify})
	if err != nil {
		slog.Error("enrollment-notifier stopped", "err", err)
		if errors.Is(err, router.ErrTooManyErrors) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

// notify handles one event: nil acks it; an error is retried, then poisoned (router: section).
func notify(msg *message.Message) error {
	ev, err := bus.ParseEvent(msg)
	if err != nil {
		return err
	}
	if ev.Type != EventType {
		return nil
	}
	var e enrollment
	if err := ev.DecodeData(nil, &e); err != nil {
		return fmt.Errorf("event %s: %w", ev.ID, err)
	}
	// A real notifier would send mail here, with msg.Context() (it carries the trace).
	slog.InfoContext(msg.Context(), "enrollment created: notifying", "event_id", ev.ID, "user_id", e.User.ID, "course", e.Course.CourseKey, "mode", e.Mode)
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
