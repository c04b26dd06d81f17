package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
)

type consumeFlags struct {
	topic, group, from string
	count              int
	timeout            time.Duration
	exitAtEnd          bool
}

// consumedEvent is the JSON line consume prints per message.
type consumedEvent struct {
	Topic   string `json:"topic"`
	Backend string `json:"backend"`
	// Position is where the broker holds the message, in its own terms: Kafka
	// "partition:offset", a Redis stream id, RabbitMQ "queue#delivery-tag" or, on a stream
	// queue, "queue@offset". It is what --from takes (where the backend can start there).
	Position string `json:"position,omitempty"`
	// Timestamp is the broker's time for the message (Kafka's record timestamp, the time in a
	// Redis stream id), RFC 3339 in UTC; absent where the broker keeps none (RabbitMQ).
	Timestamp     string            `json:"timestamp,omitempty"`
	ID            string            `json:"id"`
	Key           string            `json:"key,omitempty"`
	Headers       map[string]string `json:"headers"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadText   *string           `json:"payload_text,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
}

func newConsumeCmd(g *globals) *cobra.Command {
	f := &consumeFlags{}
	cmd := &cobra.Command{
		Use:   "consume --topic T [--group G] [--from oldest|newest|TIME|POSITION] [--count N] [--exit-at-end]",
		Short: "Print events as JSON lines (position, headers, key, payload), acknowledging each",
		Long: `consume prints one JSON object per event: topic, backend, the broker's position and timestamp
for it, id, key, headers and the payload (as JSON when it is JSON, as text or base64 otherwise),
and acknowledges each after printing it.

By default it joins a consumer group of its own, so it never takes events away from a service's
group; give --group to read as (and commit for) a particular group.

--from says where a new group starts: oldest (also earliest, beginning), newest (also latest,
end), an RFC 3339 time such as 2026-12-01T09:00:00Z (Kafka, Redis, RabbitMQ stream queues), or
a position as consume prints it: Kafka partition:offset, a Redis stream id, a RabbitMQ stream
offset. A group that has consumed before goes on where it left off. A backend that cannot
start where asked says so and consume fails.

--exit-at-end stops once the events that were in the topic when consume started are read
(kcat's -e): Kafka's high watermarks, the last Redis stream id, a RabbitMQ queue's depth.

The exit code is 0 when --count events arrived (or --exit-at-end reached the end), 130 when
Ctrl-C stopped it before that, 1 on any error.`,
		Example: `  eventbus consume --topic enrollments --from oldest --exit-at-end | jq .payload
  eventbus consume --topic enrollments --from 2026-12-01T09:00:00Z --count 10
  eventbus consume --topic enrollments --from 0:1042 --count 1     # Kafka partition 0, offset 1042`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConsume(g, f, cmd) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to consume (required)")
	fl.StringVar(&f.group, "group", "", "consumer group (default: a new group eventbus-cli-<random>)")
	fl.StringVar(&f.from, "from", "oldest", "where a new group starts: oldest, newest, an RFC 3339 time or a backend position")
	fl.IntVar(&f.count, "count", 0, "exit after this many events (0: until interrupted)")
	fl.DurationVar(&f.timeout, "timeout", 0, "give up after this long, failing if --count events did not arrive (0: no limit)")
	fl.BoolVar(&f.exitAtEnd, "exit-at-end", false, "exit once the events present at start are read")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

// startOptions translates --from into bus options: a named start, a time, or else a position
// that the backend's driver parses (and rejects, saying what it wants, when it cannot).
func startOptions(from string) (bus.StartFrom, []bus.Option) {
	if s, err := bus.ParseStartFrom(from); err == nil {
		return s, []bus.Option{bus.WithStartFrom(s)}
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(from)); err == nil {
		return bus.StartDefault, []bus.Option{bus.WithStartAt(t)}
	}
	return bus.StartDefault, []bus.Option{bus.WithStartPosition(strings.TrimSpace(from))}
}

func runConsume(g *globals, f *consumeFlags, cmd *cobra.Command) error {
	if f.count < 0 {
		return fmt.Errorf("--count %d: must not be negative", f.count)
	}
	if strings.TrimSpace(f.from) == "" {
		return errors.New("--from is empty: want oldest, newest, an RFC 3339 time or a backend position")
	}
	startFrom, startOpts := startOptions(f.from)
	groupName := f.group
	group := bus.WithConsumerGroup(f.group)
	if f.group == "" {
		// A group of its own, marked temporary so brokers that keep state per group (a
		// RabbitMQ queue) can drop it once this session is gone.
		groupName = "eventbus-cli-" + watermill.NewShortUUID()
		group = bus.WithTemporaryGroup(groupName)
	}
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	// A window of one: on Kafka that is eventbus's own subscriber, which on Close waits for the
	// acked records' offsets to be marked before committing; Watermill's may drop the last ack
	// when Close follows it at once, and a named group then sees that event again next run.
	b, err := g.openBus(cmd, cfg, append([]bus.Option{group, bus.WithMaxInFlight(1)}, startOpts...)...)
	if err != nil {
		if startFrom == bus.StartDefault && (errors.Is(err, bus.ErrNotSupported) || errors.Is(err, bus.ErrInvalidPosition)) {
			return fmt.Errorf("--from %q: %w", f.from, err)
		}
		return err
	}
	defer b.Close()

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	if f.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	// Said before subscribing, which declares the queue, and before waiting for events, so
	// that an operator does not wait for events that cannot come.
	notes, err := b.ConsumeNotes(ctx, f.topic)
	if err != nil {
		return err
	}
	if caps := b.Capabilities(); cmd.Flags().Changed("from") && startFrom == bus.StartOldest && !caps.Has(bus.Replay) {
		notes = append([]string{fmt.Sprintf("--from oldest: %s keeps no history to start from (%s); consume reads what group %s is handed from now on",
			b.Backend(), caps.Notes[bus.Replay], groupName)}, notes...)
	}
	for _, n := range notes {
		fmt.Fprintf(cmd.ErrOrStderr(), "eventbus: note: %s\n", n)
	}
	var msgs <-chan *message.Message
	var end bus.BacklogEnd
	if f.exitAtEnd {
		if msgs, end, err = b.SubscribeToEnd(ctx, f.topic); err != nil {
			return fmt.Errorf("--exit-at-end: %w", err)
		}
	} else if msgs, err = b.Subscriber.Subscribe(ctx, f.topic); err != nil {
		return fmt.Errorf("subscribe to %s: %w", f.topic, err)
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	seen := 0
	for f.count == 0 || seen < f.count {
		if end != nil && end.Reached() {
			return b.Close()
		}
		select {
		case <-ctx.Done():
			if err := interrupted(cmd.Context()); err != nil {
				return err
			}
			if cmd.Context().Err() == nil && (f.count > 0 || end != nil) {
				want := strconv.Itoa(f.count)
				if f.count == 0 {
					want = "the"
				}
				return fmt.Errorf("received %d of %s events from %s within %s", seen, want, f.topic, f.timeout)
			}
			return b.Close()
		case msg, ok := <-msgs:
			if !ok {
				return fmt.Errorf("subscription to %s ended after %d events", f.topic, seen)
			}
			out := printable(f.topic, b.Backend(), msg)
			if decodeSchemaPayload(b, msg, &out) { // Avro, shown decoded
				out.PayloadText, out.PayloadBase64 = nil, ""
			}
			if err := enc.Encode(out); err != nil {
				msg.Nack()
				return fmt.Errorf("write event %s: %w", msg.UUID, err)
			}
			msg.Ack()
			seen++
			if end != nil {
				end.Saw(msg)
			}
		}
	}
	return b.Close()
}

// printable is msg as consume prints it: internal headers left out, ce_time in one format.
func printable(topic, backend string, msg *message.Message) consumedEvent {
	out := consumedEvent{Topic: topic, Backend: backend, ID: msg.UUID, Key: msg.Metadata.Get(bus.HeaderKey), Headers: map[string]string{}}
	for k, v := range msg.Metadata {
		if strings.HasPrefix(k, "_watermill") {
			continue // Watermill's bookkeeping, not the event's
		}
		out.Headers[k] = v
	}
	if t, ok := parseEventTime(out.Headers[bus.HeaderTime]); ok {
		out.Headers[bus.HeaderTime] = t.UTC().Format(time.RFC3339Nano)
	}
	if pos, ok := bus.PositionOf(msg); ok {
		out.Position = pos.Coordinates
	}
	if t, ok := bus.BrokerTimeOf(msg); ok && !t.IsZero() {
		out.Timestamp = t.UTC().Format(time.RFC3339Nano)
	}
	switch p := []byte(msg.Payload); {
	case len(p) == 0:
	case json.Valid(p):
		out.Payload = p
	case utf8.Valid(p):
		s := string(p)
		out.PayloadText = &s
	default:
		out.PayloadBase64 = base64.StdEncoding.EncodeToString(p)
	}
	return out
}

// parseEventTime reads ce_time as the backends carry it: RFC 3339, or ISO 8601 without a zone
// as Python's isoformat() writes a naive time (Open edX on Redis), taken as UTC.
func parseEventTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
