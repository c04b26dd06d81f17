package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
)

type consumeFlags struct {
	topic, group, from string
	count              int
	timeout            time.Duration
}

// consumedEvent is the JSON line consume prints per message.
type consumedEvent struct {
	Topic         string            `json:"topic"`
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
		Use:   "consume --topic T [--group G] [--from oldest|newest] [--count N]",
		Short: "Print events as JSON lines (headers, key, payload), acknowledging each",
		Long: `consume prints one JSON object per event: topic, id, key, headers and the payload (as JSON
when it is JSON, as text or base64 otherwise), and acknowledges each after printing it.

By default it joins a consumer group of its own, so it never takes events away from a service's
group; give --group to read as (and commit for) a particular group.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConsume(g, f, cmd) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to consume (required)")
	fl.StringVar(&f.group, "group", "", "consumer group (default: a new group eventbus-cli-<random>)")
	fl.StringVar(&f.from, "from", "oldest", "where a new group starts: oldest (earliest) or newest (latest)")
	fl.IntVar(&f.count, "count", 0, "exit after this many events (0: until interrupted)")
	fl.DurationVar(&f.timeout, "timeout", 0, "give up after this long, failing if --count events did not arrive (0: no limit)")
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func runConsume(g *globals, f *consumeFlags, cmd *cobra.Command) error {
	from, err := bus.ParseStartFrom(f.from)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	if f.count < 0 {
		return fmt.Errorf("--count %d: must not be negative", f.count)
	}
	group := bus.WithConsumerGroup(f.group)
	if f.group == "" {
		// A group of its own, marked temporary so brokers that keep state per group (a
		// RabbitMQ queue) can drop it once this session is gone.
		group = bus.WithTemporaryGroup("eventbus-cli-" + watermill.NewShortUUID())
	}
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	logger, err := g.logger(cmd)
	if err != nil {
		return err
	}
	b, err := openBus(cmd.Context(), cfg, bus.WithLogger(logger), group, bus.WithStartFrom(from))
	if err != nil {
		return err
	}
	defer b.Close()

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	if f.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	msgs, err := b.Subscriber.Subscribe(ctx, f.topic)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", f.topic, err)
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	seen := 0
	for f.count == 0 || seen < f.count {
		select {
		case <-ctx.Done():
			if f.count > 0 && cmd.Context().Err() == nil {
				return fmt.Errorf("received %d of %d events from %s within %s", seen, f.count, f.topic, f.timeout)
			}
			return b.Close()
		case msg, ok := <-msgs:
			if !ok {
				return fmt.Errorf("subscription to %s ended after %d events", f.topic, seen)
			}
			out := consumedEvent{Topic: f.topic, ID: msg.UUID, Key: msg.Metadata.Get(bus.HeaderKey), Headers: msg.Metadata}
			switch p := []byte(msg.Payload); {
			case len(p) == 0:
			case decodeSchemaPayload(b, msg, &out):
			case json.Valid(p):
				out.Payload = p
			case utf8.Valid(p):
				s := string(p)
				out.PayloadText = &s
			default:
				out.PayloadBase64 = base64.StdEncoding.EncodeToString(p)
			}
			if err := enc.Encode(out); err != nil {
				msg.Nack()
				return fmt.Errorf("write event %s: %w", msg.UUID, err)
			}
			msg.Ack()
			seen++
		}
	}
	return b.Close()
}
