// Command consumer is the Open edX consumer model in a few lines: one long-lived process that
// consumes one topic as a member of a consumer group, and scales by running more copies.
// The config file picks the broker; this code does not change between Kafka, Redis and RabbitMQ.
//
//	go run ./cmd/eventbus dev &                      # a Kafka broker on 127.0.0.1:9092
//	go run ./examples/consumer -topic enrollments    # default config: Kafka on 127.0.0.1:9092
//	go run ./cmd/eventbus publish --topic enrollments --type org.openedx.learning.course.enrollment.created.v1 \
//	    --source openedx/lms/web --key user-1 --data '{"user_id": 1, "course_id": "course-v1:edX+DemoX+Demo"}'
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ThreeDotsLabs/watermill/message"

	// Every backend the config file may pick: switching brokers is a config change alone.
	_ "github.com/eventbus-go/eventbus/backends/kafka"
	_ "github.com/eventbus-go/eventbus/backends/rabbitmq"
	_ "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/router"
)

type enrollment struct {
	UserID   int    `json:"user_id"`
	CourseID string `json:"course_id"`
}

func main() {
	configPath := flag.String("config", config.DefaultFile, "config file (built-in defaults when absent)")
	topic := flag.String("topic", "enrollments", "topic to consume")
	flag.Parse()
	if err := run(*configPath, *topic); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(configPath, topic string) error {
	// SIGTERM (Kubernetes stopping the pod) drains in-flight handlers, then exits. Once the
	// first signal is in, stop restores the default handling: a second signal exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)

	cfg, err := config.LoadOrDefault(configPath)
	if err != nil {
		return err
	}
	b, err := bus.Open(ctx, cfg, bus.Require(bus.ConsumerGroups))
	if err != nil {
		return err
	}
	defer b.Close()

	// The router: section: retries, poison queue, per-key ordering, dedup (see package router).
	r, err := router.FromConfig(b, cfg)
	if err != nil {
		return err
	}
	r.AddConsumerHandler("enrollment-created", topic, b.Subscriber, func(msg *message.Message) error {
		ev, err := bus.ParseEvent(msg)
		if err != nil {
			return err
		}
		var e enrollment
		if err := ev.DecodeData(nil, &e); err != nil {
			return err
		}
		slog.Info("enrollment", "event_id", ev.ID, "type", ev.Type, "user", e.UserID, "course", e.CourseID)
		return nil // nil acks the event; an error is retried, then the event goes to the poison queue
	})
	return r.Run(ctx)
}
