package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
)

// dlqFlags are the flags the dlq subcommands share.
type dlqFlags struct {
	topic, poisonTopic, group, dlqGroup string
	reasons, ids                        []string
	since, until                        string
	limit, maxRedrives                  int
	dryRun, asJSON, all                 bool
	progress                            string

	// deprecated, ignored: a run reads the queue as it was when it started
	wait   time.Duration
	window int

	// parsed
	from, to time.Time
}

// dlqReaderGroup is the consumer group whose committed offsets mark, on Kafka, where the poison
// queue begins: redrive and purge commit it past what they removed.
const dlqReaderGroup = bus.DefaultPoisonReaderGroup

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, redrive and purge the poison queue (dead-letter queue) of a topic",
		Long: `The poison queue of topic T is the topic the router's poison middleware stores failed messages
in: router.poison.topic of the config file, by default T.poison. Every message there keeps its
payload, key and headers, plus its provenance: reason, error, handler, consumer group, broker
position, attempts, first and last failure, host.

A run works on the poison queue as it was when the run started, and stops at that end: what
arrives later (a redriven message that failed again, say) waits for the next run. It reads
without taking anything, so another run or a crashed one cannot hide messages from it, and it
declares and creates nothing: an unknown topic is an error. A run that cannot see the whole
queue fails and says why.
  kafka     the records after the committed offsets of group ` + dlqReaderGroup + ` (--dlq-group),
            read from each partition up to its high watermark. Kafka cannot delete one record:
            redrive and purge commit the group's offset past what they removed, and append
            again the records before it that they keep.
  redis     the stream's entries up to its last id (XRANGE); removing is XDEL.
  rabbitmq  the config's consumer group's queue of the poison topic (--dlq-group), as deep as
            it was; read with basic.get and requeued, removing is an ack. A queue that has
            consumers is refused (they hold messages the run cannot see).

list and show change nothing; show prints one JSON object per line (pipe it to jq). redrive
sends each selected message back to the topic it failed on, with its key and event id, an
incremented eventbus_redrive_count, eventbus_redrive_group (only that consumer group handles it;
the others ack it unhandled) and eventbus_redrive_id (the poison record it came from), then
removes it from the poison queue; purge removes without sending. Summaries go to standard
error, data to standard output.

Sending a redrive and removing its record happen together on Redis (one MULTI) and RabbitMQ
(one transaction, straight to the failing group's queue). On Kafka a run interrupted between
them sends it again on the next run, with the same event id and eventbus_redrive_id: a
consumer with router.dedup skips it when the first copy was handled; when both failed again,
the next run redrives one and removes the other.`,
	}
	cmd.AddCommand(
		newDLQSubCmd(g, "list", "List poisoned messages, one line each", dlqList),
		newDLQSubCmd(g, "show", "Show poisoned messages in full (headers, payload, provenance) as JSON lines", dlqShow),
		newDLQSubCmd(g, "redrive", "Send poisoned messages back to their topic and consumer group, then remove them from the poison queue", dlqRedrive),
		newDLQSubCmd(g, "purge", "Remove poisoned messages from the poison queue", dlqPurge),
	)
	return cmd
}

type dlqAction int

const (
	dlqList dlqAction = iota
	dlqShow
	dlqRedrive
	dlqPurge
)

func newDLQSubCmd(g *globals, name, short string, action dlqAction) *cobra.Command {
	f := &dlqFlags{}
	use := name + " --topic T [--group G] [--reason R] [--id ID] [--since T] [--until T]"
	if action == dlqPurge {
		use += " [--all]"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDLQ(g, f, cmd, action) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "the topic whose poison queue to read (required)")
	fl.StringVar(&f.poisonTopic, "poison-topic", "", "the poison topic (default: router.poison.topic of the config, e.g. T.poison)")
	fl.StringVar(&f.group, "group", "", "only messages poisoned in this consumer group")
	fl.StringArrayVar(&f.reasons, "reason", nil, "only messages poisoned for this reason: invalid, permanent, exhausted, parked (repeatable)")
	fl.StringArrayVar(&f.ids, "id", nil, "only the message whose event id is this or starts with this (a unique prefix; repeatable)")
	fl.StringVar(&f.since, "since", "", "only messages whose last failure is at or after this time (RFC 3339, or a duration such as 2h for that long ago)")
	fl.StringVar(&f.until, "until", "", "only messages whose last failure is before this time (RFC 3339 or a duration ago)")
	fl.IntVar(&f.limit, "limit", 0, "stop after this many selected messages (0: no limit)")
	fl.StringVar(&f.dlqGroup, "dlq-group", "", "kafka: the consumer group whose offsets mark the start of the poison queue (default "+dlqReaderGroup+
		"); rabbitmq: the consumer group whose queue of the poison topic holds it (default: the config's consumer group)")
	fl.DurationVar(&f.wait, "wait", 0, "ignored")
	fl.IntVar(&f.window, "window", 0, "ignored")
	_ = fl.MarkDeprecated("wait", "a run reads the poison queue as it was when it started and stops at that end")
	_ = fl.MarkDeprecated("window", "a run reads the poison queue without holding messages")
	switch action {
	case dlqList:
		fl.BoolVar(&f.asJSON, "json", false, "print JSON lines instead of a table")
	case dlqRedrive, dlqPurge:
		fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be done, change nothing")
		fl.StringVar(&f.progress, "progress", "auto", "progress bar on standard error: auto (when it is a terminal), always or never")
	}
	switch action {
	case dlqRedrive:
		fl.IntVar(&f.maxRedrives, "max-redrives", 0, "leave in the poison queue a message already redriven this many times (its eventbus_redrive_count; 0: no limit)")
	case dlqPurge:
		fl.BoolVar(&f.all, "all", false, "purge every message of the topic (required when no filter is given)")
	}
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func (f *dlqFlags) parse(now time.Time, action dlqAction) error {
	var errs []error
	for _, r := range f.reasons {
		ok := false
		for _, known := range middleware.Reasons {
			ok = ok || middleware.Reason(r) == known
		}
		if !ok {
			errs = append(errs, fmt.Errorf("--reason %q: want invalid, permanent, exhausted or parked", r))
		}
	}
	for _, id := range f.ids {
		if id == "" {
			errs = append(errs, errors.New("--id: empty"))
		}
	}
	var err error
	if f.from, err = parseWhen(f.since, now); err != nil {
		errs = append(errs, fmt.Errorf("--since: %w", err))
	}
	if f.to, err = parseWhen(f.until, now); err != nil {
		errs = append(errs, fmt.Errorf("--until: %w", err))
	}
	if f.limit < 0 {
		errs = append(errs, fmt.Errorf("--limit %d: must not be negative", f.limit))
	}
	if f.maxRedrives < 0 {
		errs = append(errs, fmt.Errorf("--max-redrives %d: must not be negative", f.maxRedrives))
	}
	switch f.progress {
	case "", "auto", "always", "never":
	default:
		errs = append(errs, fmt.Errorf("--progress %q: want auto, always or never", f.progress))
	}
	filtered := f.group != "" || len(f.reasons) > 0 || len(f.ids) > 0 || f.since != "" || f.until != "" || f.limit > 0
	if action == dlqPurge && !filtered && !f.all && !f.dryRun {
		errs = append(errs, errors.New("purge without a filter removes every poisoned message of the topic: pass --all, or select with --group, --reason, --id, --since, --until or --limit"))
	}
	return errors.Join(errs...)
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-23T12:00:00Z) nor a duration ago (2h)", s)
}

// poisoned is one message read from the poison queue.
type poisoned struct {
	msg  *message.Message
	prov middleware.Provenance
	err  error // the message has no valid provenance
}
