package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
)

type replayFlags struct {
	topic, group, since, to string
	dryRun, json            bool
}

func newReplayCmd(g *globals) *cobra.Command {
	f := &replayFlags{}
	cmd := &cobra.Command{
		Use:   "replay --topic T --group G (--since TIME|DURATION | --to POSITION) [--dry-run]",
		Short: "Move a consumer group back (or forward) so that its next run handles events again from there",
		Long: `replay moves consumer group G's position on topic T; the group's next run is handed events
from the new position on. It changes where the group stands, not the events.

--since takes an RFC 3339 time (2026-12-01T09:00:00Z) or a duration back from now (90m, 2h):
the group goes to the first event the broker stamped at or after it, on every partition.
--to takes a position as consume prints it (Kafka partition:offset, which moves that partition
only; a Redis stream id): the group is handed that event next.

  kafka     commits, for the group, the offset each partition goes on from (offsets for times).
  redis     XGROUP SETID to just before the position; entries pending in the group stay pending.
  rabbitmq  refused: a classic or quorum queue deletes acked messages, and AMQP stream consumers
            keep no server-side offset for a group; start a new subscription with
            consumer.start_from or consume --from instead.

The group must have no live members: stop its consumers first. On Kafka a group with members is
refused (a member's next commit would undo the move); on Redis a consumer that read within five
redis.consumer.block_time periods (5s by default) counts as live.

--dry-run prints the positions the group would get, per partition or stream, and changes
nothing. The table has the group's position before (FROM: the next event it would have been
handed; "-" where it had none) and after (TO; "end" on Redis when nothing is there yet).`,
		Example: `  eventbus replay --topic enrollments --group notifier --since 2h --dry-run
  eventbus replay --topic enrollments --group notifier --since 2026-12-01T09:00:00Z
  eventbus replay --topic enrollments --group notifier --to 0:1042`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReplay(g, f, cmd) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "the topic (required)")
	fl.StringVar(&f.group, "group", "", "the consumer group to move (required)")
	fl.StringVar(&f.since, "since", "", "an RFC 3339 time, or a duration back from now (e.g. 90m)")
	fl.StringVar(&f.to, "to", "", "a position as consume prints it (Kafka partition:offset, a Redis stream id)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the new positions without changing anything")
	fl.BoolVar(&f.json, "json", false, "print the positions as JSON lines")
	_ = cmd.MarkFlagRequired("topic")
	_ = cmd.MarkFlagRequired("group")
	return cmd
}

// parseSince reads --since: an RFC 3339 time, or a positive duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration back from now must be positive", s)
		}
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time such as 2026-12-01T09:00:00Z or a duration such as 90m", s)
}

func runReplay(g *globals, f *replayFlags, cmd *cobra.Command) error {
	if strings.TrimSpace(f.topic) == "" || strings.TrimSpace(f.group) == "" {
		return errors.New("--topic and --group must not be empty")
	}
	var target bus.RewindTarget
	switch {
	case f.since != "" && f.to != "":
		return errors.New("--since and --to: give one of them")
	case f.since != "":
		t, err := parseSince(f.since, time.Now())
		if err != nil {
			return err
		}
		target.At = t
	case strings.TrimSpace(f.to) != "":
		target.Position = strings.TrimSpace(f.to)
	default:
		return errors.New("give --since TIME|DURATION or --to POSITION")
	}
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	b, err := g.openBus(cmd, cfg, bus.WithConsumerGroup(f.group))
	if err != nil {
		return err
	}
	defer b.Close()
	positions, err := b.Rewind(cmd.Context(), f.topic, f.group, target, f.dryRun)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(out)
		for _, p := range positions {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tGROUP\tPARTITION\tFROM\tTO")
		for _, p := range positions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Group, p.Partition, orDash(p.From), p.To)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	verb := "moved"
	if f.dryRun {
		verb = "dry run: would move"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "eventbus: %s group %s on %s (%d positions); its next run starts there\n", verb, f.group, f.topic, len(positions))
	return b.Close()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
