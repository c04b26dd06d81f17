package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/router"
)

type statusFlags struct {
	topic  string
	groups []string
	json   bool
}

func newStatusCmd(g *globals) *cobra.Command {
	f := &statusFlags{}
	cmd := &cobra.Command{
		Use:   "status [--topic T] [--group G]... [--json]",
		Short: "Show topics, consumer groups, members, lag per partition or stream, and poison queue depth",
		Long: `status describes what kafka-consumer-groups.sh --describe shows, on every backend: per topic its
partitions or stream (messages retained, retention where known), the depth of its poison queue
(router.poison.topic), and per consumer group its state, members and lag per partition, stream
or queue. It changes nothing.

  kafka     every topic (without --topic) and every group with members on the topic or offsets
            committed on it; LAG is the high watermark minus the committed offset (the records
            retained when the group never committed); retention.ms and retention.bytes.
  redis     every stream key (without --topic) and every group of the stream (XINFO); LAG is
            entries not yet delivered to the group, PENDING delivered and not yet acked; a
            group is active while a consumer read within five redis.consumer.block_time periods.
  rabbitmq  --topic is required (AMQP cannot list queues); the configured group or those named;
            LAG is the ready messages in the group's queue; unacked messages are not visible
            over AMQP. A stream queue keeps no position per group: no lag there.

A group named with --group that does not exist is shown as absent, with the lag it would start
with. --json prints one JSON object per topic.`,
		Example: `  eventbus status
  eventbus status --topic enrollments --group notifier
  eventbus status --topic enrollments --json | jq '.groups[].lag'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStatus(g, f, cmd) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "only this topic (default: every topic the backend can list)")
	fl.StringArrayVar(&f.groups, "group", nil, "only this consumer group (repeatable; default: every group of the topic)")
	fl.BoolVar(&f.json, "json", false, "print one JSON object per topic")
	return cmd
}

// topicReport is one topic as status prints it with --json.
type topicReport struct {
	Topic      string            `json:"topic"`
	Retention  string            `json:"retention,omitempty"`
	Partitions []partitionReport `json:"partitions"`
	// PoisonTopic and PoisonDepth: the topic's poison queue and the messages in it (as the dlq
	// command counts them; -1 when unknown).
	PoisonTopic string        `json:"poison_topic"`
	PoisonDepth int64         `json:"poison_depth"`
	Groups      []groupReport `json:"groups"`
}

type partitionReport struct {
	Partition string `json:"partition"`
	Oldest    string `json:"oldest,omitempty"`
	Newest    string `json:"newest,omitempty"`
	Messages  int64  `json:"messages"`
}

type groupReport struct {
	Group     string         `json:"group"`
	State     string         `json:"state,omitempty"`
	Consumers int            `json:"consumers"`
	Members   []memberReport `json:"members,omitempty"`
	// Lag is the group's total lag; -1 when the backend cannot tell.
	Lag        int64       `json:"lag"`
	Partitions []lagReport `json:"lag_per_partition,omitempty"`
}

type memberReport struct {
	ID         string   `json:"id"`
	ClientID   string   `json:"client_id,omitempty"`
	Host       string   `json:"host,omitempty"`
	Partitions []string `json:"partitions,omitempty"`
	// Pending is -1 and IdleMS -1 where the backend does not tell.
	Pending int64 `json:"pending"`
	IdleMS  int64 `json:"idle_ms"`
}

type lagReport struct {
	Partition string `json:"partition"`
	Lag       int64  `json:"lag"`
	Pending   int64  `json:"pending"`
}

func runStatus(g *globals, f *statusFlags, cmd *cobra.Command) error {
	for _, gr := range f.groups {
		if strings.TrimSpace(gr) == "" {
			return errors.New("--group is empty")
		}
	}
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	routerCfg, err := router.LoadConfig(cfg)
	if err != nil {
		return err
	}
	b, err := g.openBus(cmd, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx := cmd.Context()
	topics, err := b.Status(ctx, f.topic, f.groups...)
	if err != nil {
		return err
	}
	reports := make([]topicReport, 0, len(topics))
	for _, ts := range topics {
		r := report(ts)
		r.PoisonTopic = routerCfg.Poison.PoisonTopic(ts.Topic)
		if r.PoisonDepth, err = poisonDepth(ctx, b, ts.Topic, r.PoisonTopic); err != nil {
			return err
		}
		reports = append(reports, r)
	}
	if f.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		for _, r := range reports {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return b.Close()
	}
	if err := printStatus(cmd.OutOrStdout(), reports); err != nil {
		return err
	}
	return b.Close()
}

func report(ts bus.TopicStatus) topicReport {
	r := topicReport{Topic: ts.Topic, Retention: ts.Retention, Partitions: []partitionReport{}, Groups: []groupReport{}}
	for _, p := range ts.Partitions {
		r.Partitions = append(r.Partitions, partitionReport(p))
	}
	for _, gs := range ts.Groups {
		gr := groupReport{Group: gs.Group, State: gs.State, Consumers: gs.Consumers}
		if len(gs.Lag) == 0 {
			gr.Lag = -1
		}
		for _, l := range gs.Lag {
			gr.Partitions = append(gr.Partitions, lagReport{Partition: l.Partition, Lag: l.Lag, Pending: l.Pending})
			if l.Lag < 0 || gr.Lag < 0 {
				gr.Lag = -1
			} else {
				gr.Lag += l.Lag
			}
		}
		for _, m := range gs.Members {
			idle := int64(-1)
			if m.Idle >= 0 {
				idle = m.Idle.Milliseconds()
			}
			gr.Members = append(gr.Members, memberReport{ID: m.ID, ClientID: m.ClientID, Host: m.Host, Partitions: m.Partitions, Pending: m.Pending, IdleMS: idle})
		}
		r.Groups = append(r.Groups, gr)
	}
	return r
}

// poisonDepth counts the messages in topic's poison queue as the dlq command sees them (on
// Kafka the records past the dlq reader group's committed offsets, on Redis the stream's
// entries, on RabbitMQ the ready messages in the configured group's queue of the poison
// topic): 0 when it does not exist, -1 when the backend cannot count them (a RabbitMQ stream).
func poisonDepth(ctx context.Context, b *bus.Bus, topic, poisonTopic string) (int64, error) {
	q, err := b.PoisonQueue(ctx, bus.PoisonQueueOptions{Topic: topic, PoisonTopic: poisonTopic})
	if errors.Is(err, bus.ErrNotSupported) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := q.Depth(ctx)
	err = errors.Join(err, q.Close())
	switch {
	case errors.Is(err, bus.ErrUnknownTopic):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("poison queue %s: %w", poisonTopic, err)
	}
	return int64(n), nil
}

func printStatus(w io.Writer, reports []topicReport) error {
	if len(reports) == 0 {
		_, err := fmt.Fprintln(w, "no topics")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, r := range reports {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		var retained int64
		for _, p := range r.Partitions {
			retained += p.Messages
		}
		line := fmt.Sprintf("topic %s: %s, %d messages retained", r.Topic, plural(len(r.Partitions), "partition"), retained)
		if len(r.Partitions) == 0 {
			line = fmt.Sprintf("topic %s", r.Topic)
		}
		if r.Retention != "" {
			line += ", " + r.Retention
		}
		if r.PoisonDepth >= 0 {
			line += fmt.Sprintf("; poison queue %s: %d messages", r.PoisonTopic, r.PoisonDepth)
		} else {
			line += fmt.Sprintf("; poison queue %s: depth unknown", r.PoisonTopic)
		}
		fmt.Fprintln(tw, line)
		if len(r.Groups) == 0 {
			fmt.Fprintln(tw, "  no consumer groups")
			continue
		}
		fmt.Fprintln(tw, "  GROUP\tSTATE\tPARTITION\tLAG\tPENDING\tMEMBER")
		for _, gr := range r.Groups {
			if len(gr.Partitions) == 0 {
				fmt.Fprintf(tw, "  %s\t%s\t-\tunknown\t-\t%s\n", gr.Group, orDash(gr.State), plural(gr.Consumers, "consumer"))
			}
			for _, l := range gr.Partitions {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", gr.Group, orDash(gr.State), l.Partition, orNone(l.Lag), orNone(l.Pending), memberOf(gr, l.Partition))
			}
			for _, m := range gr.Members {
				if len(m.Partitions) > 0 || m.IdleMS < 0 {
					continue // shown beside its partitions
				}
				fmt.Fprintf(tw, "  %s\t\t\t\t%s\t%s (read %s ago)\n", gr.Group, orNone(m.Pending), m.ID, time.Duration(m.IdleMS)*time.Millisecond)
			}
		}
	}
	return tw.Flush()
}

// memberOf names who reads partition: the Kafka member assigned it; "" where the group's
// consumers are listed on lines of their own (Redis); else how many consumers the group has.
func memberOf(gr groupReport, partition string) string {
	for _, m := range gr.Members {
		for _, p := range m.Partitions {
			if p == partition {
				return m.ID + " " + m.Host
			}
		}
	}
	if len(gr.Members) > 0 && gr.Members[0].IdleMS < 0 {
		return "-" // Kafka members, none assigned this partition
	}
	if len(gr.Members) > 0 {
		return ""
	}
	return plural(gr.Consumers, "consumer")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func orNone(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}
