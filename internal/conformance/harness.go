// Package conformance builds bus/bustest harnesses from a config file, adding what only a
// backend's own client can do: removing a check's topics afterwards, and starting a group at
// a point in time where the backend supports it. `eventbus conformance` and the tests in
// tests/ share it, so both run the same checks the same way.
package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/backends/rabbitmq"
	"github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
)

// Options tune Harness.
type Options struct {
	// Name labels the results. Default: the config's backend.
	Name string
	// TopicPrefix starts every topic the checks use. Default: "eventbus-conformance-".
	TopicPrefix string
	// BusOptions are added to every bus the checks open (bus.WithMaxInFlight, say).
	BusOptions []bus.Option
	// Logger receives the buses' logs. Default: discarded.
	Logger *slog.Logger
}

// Harness returns the harness that runs the checks against the deployment cfg describes:
// buses opened from cfg in throwaway groups (on RabbitMQ their queues expire once unused;
// Kafka topics the driver creates get at least two partitions, for the ConsumerGroups check),
// topics under opts.TopicPrefix removed after each check (Redis: DEL of the streams; Kafka:
// the topics deleted through the admin API; RabbitMQ: stream queues deleted; the exchange is
// shared and stays), and ReplayByTime through redis.start_from as a time.
func Harness(cfg *config.Config, opts Options) (bustest.Harness, error) {
	if _, err := bus.BackendConfig(cfg); err != nil {
		return bustest.Harness{}, err
	}
	if opts.Name == "" {
		opts.Name = cfg.Backend
	}
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = "eventbus-conformance-"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	base := func(group string) []bus.Option {
		return append([]bus.Option{bus.WithTemporaryGroup(group), bus.WithStartFrom(bus.StartOldest), bus.WithLogger(opts.Logger)}, opts.BusOptions...)
	}
	// The groups opened since the last cleanup: on RabbitMQ each has a queue per topic.
	var mu sync.Mutex
	groups := map[string]bool{}
	h := bustest.Harness{
		Name: opts.Name,
		Open: func(ctx context.Context, group string, more ...bus.Option) (*bus.Bus, error) {
			mu.Lock()
			groups[group] = true
			mu.Unlock()
			bc, err := bus.BackendConfig(cfg)
			if err != nil {
				return nil, err
			}
			if kc, ok := bc.(*kafka.Config); ok {
				// A group's two instances can share the work only on two partitions.
				kc.Topics.Partitions = max(kc.Topics.Partitions, 2)
			}
			return bus.OpenConfig(ctx, cfg.Backend, bc, append(base(group), more...)...)
		},
	}
	var seq atomic.Int64
	h.Topic = func(t bustest.T) string {
		topic := fmt.Sprintf("%s%d-%d", opts.TopicPrefix, time.Now().UnixNano(), seq.Add(1))
		t.Cleanup(func() {
			mu.Lock()
			used := groups
			groups = map[string]bool{}
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := removeTopics(ctx, cfg, opts.Logger, used, topic, middleware.DefaultPoisonConfig().PoisonTopic(topic)); err != nil {
				t.Logf("remove topic %s: %v", topic, err)
			}
		})
		return topic
	}
	switch cfg.Backend {
	case "redis":
		h.OpenAt = func(ctx context.Context, group string, at time.Time) (*bus.Bus, error) {
			bc, err := bus.BackendConfig(cfg)
			if err != nil {
				return nil, err
			}
			rc := bc.(*redis.Config)
			rc.Consumer.StartFrom = at.UTC().Format(time.RFC3339Nano)
			return bus.OpenConfig(ctx, "redis", rc, append([]bus.Option{bus.WithTemporaryGroup(group), bus.WithLogger(opts.Logger)}, opts.BusOptions...)...)
		}
	case "kafka":
		h.RejectedTopic = "no spaces allowed!" // Kafka topic names are [a-zA-Z0-9._-]
	case "rabbitmq":
		bc, _ := bus.BackendConfig(cfg)
		if bc.(*rabbitmq.Config).Exchange.Type == "topic" {
			h.RejectedTopic = "orders.*" // a wildcard in a topic exchange's binding
		}
	}
	return h, nil
}

// removeTopics deletes topics from the broker cfg names, through a bus of its own, with what
// the broker keeps for groups on them (see bus.Bus.DeleteTopics).
func removeTopics(ctx context.Context, cfg *config.Config, logger *slog.Logger, groups map[string]bool, topics ...string) error {
	b, err := bus.Open(ctx, cfg, bus.WithLogger(logger))
	if err != nil {
		return err
	}
	defer b.Close()
	return b.DeleteTopics(ctx, topics, slices.Collect(maps.Keys(groups))...)
}
