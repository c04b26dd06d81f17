package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eventbus-go/eventbus/bus"
)

type publishFlags struct {
	topic, typ, source, key, id, subject, contentType string
	data, file                                        string
	headers                                           []string
}

func newPublishCmd(g *globals) *cobra.Command {
	f := &publishFlags{}
	cmd := &cobra.Command{
		Use:   "publish --topic T --type X --source S [--key K] (--data JSON | --file F | stdin lines)",
		Short: "Publish events: one from --data or --file, or one per line of standard input",
		Example: `  eventbus publish --topic enrollments --type org.openedx.learning.course.enrollment.created.v1 \
    --source openedx/lms/web --key user-42 --data '{"user_id": 42}'
  cat events.jsonl | eventbus publish --topic enrollments --type x.v1 --source s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPublish(g, f, cmd) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to publish to (required)")
	fl.StringVar(&f.typ, "type", "", "event type, ce_type (required)")
	fl.StringVar(&f.source, "source", "", "event source, ce_source (required)")
	fl.StringVar(&f.key, "key", "", "ordering key; events with one key keep their order")
	fl.StringVar(&f.id, "id", "", "event id, ce_id (default: a new UUID; only with a single event)")
	fl.StringVar(&f.subject, "subject", "", "event subject, ce_subject")
	fl.StringVar(&f.contentType, "content-type", "application/json", "content type of the data; JSON data is checked before sending")
	fl.StringVar(&f.data, "data", "", "the event's data")
	fl.StringVar(&f.file, "file", "", "read the event's data from this file")
	fl.StringArrayVar(&f.headers, "header", nil, "extra header as name=value (repeatable)")
	for _, name := range []string{"topic", "type", "source"} {
		_ = cmd.MarkFlagRequired(name)
	}
	cmd.MarkFlagsMutuallyExclusive("data", "file")
	return cmd
}

func runPublish(g *globals, f *publishFlags, cmd *cobra.Command) error {
	headers := map[string]string{}
	for _, h := range f.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want name=value", h)
		}
		headers[k] = v
	}
	payloads, err := readPayloads(f, cmd.InOrStdin())
	if err != nil {
		return err
	}
	if len(payloads) == 0 {
		return errors.New("nothing to publish: give --data, --file or lines on standard input")
	}
	if f.id != "" && len(payloads) > 1 {
		return fmt.Errorf("--id names one event but standard input holds %d", len(payloads))
	}
	if strings.HasPrefix(f.contentType, "application/json") {
		for i, p := range payloads {
			if !json.Valid(p) {
				return fmt.Errorf("event %d: data is not valid JSON (set --content-type for other data): %.60q", i+1, p)
			}
		}
	}

	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	logger, err := g.logger(cmd)
	if err != nil {
		return err
	}
	b, err := openBus(cmd.Context(), cfg, bus.WithLogger(logger))
	if err != nil {
		return err
	}
	defer b.Close()

	for _, p := range payloads {
		ev := bus.Event{
			ID: f.id, Type: f.typ, Source: f.source, Subject: f.subject, Key: f.key,
			ContentType: f.contentType, Data: p, Metadata: headers,
		}
		if ev, err = schemaData(b, ev); err != nil {
			return err
		}
		msg, err := bus.NewMessage(ev, b.Codec())
		if err != nil {
			return err
		}
		if err := b.Publisher.Publish(f.topic, msg); err != nil {
			return fmt.Errorf("publish %s to %s on %s: %w", msg.UUID, f.topic, b.Backend(), err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "published %s to %s\n", msg.UUID, f.topic)
	}
	return b.Close()
}

// readPayloads returns the data of each event to publish: --data, --file, or each non-empty
// line of standard input.
func readPayloads(f *publishFlags, stdin io.Reader) ([][]byte, error) {
	switch {
	case f.data != "":
		return [][]byte{[]byte(f.data)}, nil
	case f.file != "":
		data, err := os.ReadFile(f.file)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		return [][]byte{data}, nil
	}
	var out [][]byte
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" {
			out = append(out, []byte(line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	return out, nil
}
