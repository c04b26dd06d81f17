package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/router"
)

// demoConfig is the configuration the demo runs on when no config file is given: Kafka, on a
// private embedded broker.
// A short heartbeat lets the two handlers' subscriptions, members of one consumer group, settle
// the group's rebalance in a fraction of the 3s default.
const demoConfig = "backend: kafka\nkafka:\n  embedded: true\n  consumer: {heartbeat_interval: 200ms}\n"

func newDemoCmd(g *globals) *cobra.Command {
	var (
		events, keys int
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a service with two handlers on an embedded Kafka broker and report what it handled",
		Long: `demo embeds a router with two handlers on two topics, publishes keyed sample events with
CloudEvents headers, waits until every event is handled, and prints a summary.

With no config file it starts its own embedded Kafka broker and needs nothing else. With
--config (or ./eventbus.yaml) it runs on the broker that file selects, so the same demo runs
on Kafka, Redis or RabbitMQ by changing only the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if events < 2 || keys < 1 {
				return errors.New("--events must be at least 2 and --keys at least 1")
			}
			var cfg *config.Config
			var err error
			if g.configGiven(cmd) {
				cfg, err = g.loadConfig(cmd)
			} else {
				cfg, err = config.Parse("built-in demo config", []byte(demoConfig))
			}
			if err != nil {
				return err
			}
			logger, err := g.logger(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			d := &demo{events: events, keys: keys, runID: watermill.NewShortUUID()[:8]}
			return d.run(ctx, cmd, cfg, logger)
		},
	}
	cmd.Flags().IntVar(&events, "events", 300, "events to publish, split 2:1 over the two topics")
	cmd.Flags().IntVar(&keys, "keys", 50, "ordering keys (users) the events are spread over")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "fail if not every event is handled within this time")
	return cmd
}

type demo struct {
	events, keys int
	runID        string

	mu        sync.Mutex
	remaining int           // events published and not yet handled
	done      chan struct{} // closed when remaining reaches 0 after publishing
}

// topicStats is what one handler saw.
type topicStats struct {
	topic      string
	published  int
	handled    map[string]bool // by event id
	duplicates int
	lastSeq    map[string]int // by ordering key
	outOfOrder int
}

// sample is the data of every demo event.
type sample struct {
	User   string `json:"user"`
	Seq    int    `json:"seq"`
	Course string `json:"course"`
}

func (d *demo) run(ctx context.Context, cmd *cobra.Command, cfg *config.Config, logger *slog.Logger) error {
	b, err := bus.Open(ctx, cfg, bus.WithLogger(logger), bus.WithTemporaryGroup("eventbus-demo-"+d.runID), bus.WithStartFrom(bus.StartOldest))
	if err != nil {
		return err
	}
	defer b.Close()
	r, err := router.FromConfig(b, cfg)
	if err != nil {
		return err
	}

	prefix := "eventbus-demo-" + d.runID
	enrollments := &topicStats{topic: prefix + ".enrollments", handled: map[string]bool{}, lastSeq: map[string]int{}}
	certificates := &topicStats{topic: prefix + ".certificates", handled: map[string]bool{}, lastSeq: map[string]int{}}
	d.done = make(chan struct{})
	d.remaining = d.events
	r.AddConsumerHandler("enrollments", enrollments.topic, b.Subscriber, d.handler(enrollments))
	r.AddConsumerHandler("certificates", certificates.topic, b.Subscriber, d.handler(certificates))

	runCtx, stopRouter := context.WithCancel(ctx)
	routerErr := make(chan error, 1)
	routerDone := make(chan struct{})
	go func() { defer close(routerDone); routerErr <- r.Run(runCtx) }()
	defer func() {
		stopRouter()
		<-routerDone // nothing reads the demo's streams any more
		removeDemoStreams(b, prefix, logger)
	}()
	select {
	case <-r.Running():
	case err := <-routerErr:
		return fmt.Errorf("router stopped before it ran: %w", err)
	}

	start := time.Now()
	seq := map[string]int{}
	for i := range d.events {
		user := fmt.Sprintf("user-%03d", i%d.keys)
		seq[user]++
		st, typ := enrollments, "org.openedx.learning.course.enrollment.created.v1"
		if i%3 == 2 {
			st, typ = certificates, "org.openedx.learning.certificate.created.v1"
		}
		ev := bus.Event{
			Type: typ, Source: "eventbus/demo", Key: user,
			Data: sample{User: user, Seq: seq[user], Course: "course-v1:edX+DemoX+Demo_Course"},
		}
		if err := b.Publish(ctx, st.topic, ev); err != nil {
			return err
		}
		d.mu.Lock()
		st.published++
		d.mu.Unlock()
	}
	published := time.Since(start)

	select {
	case <-d.done:
	case err := <-routerErr:
		return fmt.Errorf("router stopped early: %w", err)
	case <-ctx.Done():
		d.mu.Lock()
		missing := d.remaining
		d.mu.Unlock()
		return fmt.Errorf("%d of %d events not handled: %w", missing, d.events, context.Cause(ctx))
	}
	handled := time.Since(start)
	stopRouter()
	if err := <-routerErr; err != nil {
		return fmt.Errorf("router: %w", err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	out := cmd.OutOrStdout()
	where := ""
	var brokers []string
	if b.As(&brokers) && len(brokers) > 0 {
		where = fmt.Sprintf(" (brokers %v)", brokers)
	}
	fmt.Fprintf(out, "eventbus demo on %s%s\n", b.Backend(), where)
	fmt.Fprintf(out, "  published %d events to 2 topics in %s\n", d.events, published.Round(time.Millisecond))
	fmt.Fprintf(out, "  handled   %d events %s after the first publish (%d duplicates redelivered)\n\n",
		len(enrollments.handled)+len(certificates.handled), handled.Round(time.Millisecond), enrollments.duplicates+certificates.duplicates)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  topic\tpublished\thandled\tkeys\tper-key order")
	for _, st := range []*topicStats{enrollments, certificates} {
		order := "held"
		if st.outOfOrder > 0 {
			order = fmt.Sprintf("%d out of order", st.outOfOrder)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", st.topic, st.published, len(st.handled), len(st.lastSeq), order)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n  capabilities of %s: %s\n", b.Backend(), b.Capabilities())
	return nil
}

// removeDemoStreams deletes the demo run's own streams (its topics and their poison topics, all
// named after prefix) on Redis, where every run would otherwise leave them behind. Other
// backends keep their topics: the embedded Kafka broker goes with the process, and RabbitMQ's
// temporary queues are deleted by the driver.
func removeDemoStreams(b *bus.Bus, prefix string, logger *slog.Logger) {
	var rc goredis.UniversalClient
	if !b.As(&rc) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var keys []string
	iter := rc.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	err := iter.Err()
	for _, k := range keys { // one by one: on a Cluster the keys live in different slots
		err = errors.Join(err, rc.Del(ctx, k).Err())
	}
	if err != nil {
		logger.Warn("cannot remove the demo's streams", "prefix", prefix, "err", err)
	}
}

// handler records each event once, and whether each key's sequence arrived in order.
func (d *demo) handler(st *topicStats) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		ev, err := bus.ParseEvent(msg)
		if err != nil {
			return err
		}
		var s sample
		if err := ev.DecodeData(nil, &s); err != nil {
			return err
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if st.handled[ev.ID] {
			st.duplicates++
			return nil
		}
		st.handled[ev.ID] = true
		if s.Seq < st.lastSeq[ev.Key] {
			st.outOfOrder++
		}
		st.lastSeq[ev.Key] = max(st.lastSeq[ev.Key], s.Seq)
		d.remaining--
		if d.remaining == 0 {
			close(d.done)
		}
		return nil
	}
}
