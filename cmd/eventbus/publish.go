package main

import (
	"bufio"
	"bytes"
	"context"
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
	checkJSON := strings.HasPrefix(f.contentType, "application/json")
	var single []byte // --data or --file; nil for standard input
	switch {
	case f.data != "":
		single = []byte(f.data)
	case f.file != "":
		data, err := os.ReadFile(f.file)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		single = data
	}
	if single != nil && checkJSON && !json.Valid(single) {
		return fmt.Errorf("event 1: data is not valid JSON (set --content-type for other data): %.60q", single)
	}

	// Standard input's first line is awaited before connecting, so that empty or bad input is
	// reported as such whether or not the broker is up.
	var lines <-chan line
	var first line
	if single == nil {
		lines = readLines(cmd.Context(), cmd.InOrStdin())
		select {
		case <-cmd.Context().Done():
			if err := interrupted(cmd.Context()); err != nil {
				return err
			}
			return cmd.Context().Err()
		case first = <-lines:
		}
		if first.eof {
			return errors.New("nothing to publish: give --data, --file or lines on standard input")
		}
		if err := checkLine(first, checkJSON); err != nil {
			return err
		}
	}

	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	b, err := g.openBus(cmd, cfg)
	if err != nil {
		return err
	}
	defer b.Close()

	send := func(data []byte) error {
		ev := bus.Event{
			ID: f.id, Type: f.typ, Source: f.source, Subject: f.subject, Key: f.key,
			ContentType: f.contentType, Data: data, Metadata: headers,
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
		return nil
	}
	if single != nil {
		if err := send(single); err != nil {
			return err
		}
		return b.Close()
	}

	// Standard input: each line is sent as soon as it is read, so a producer that writes a line
	// now and then (tail -f, a script) sees its events go out as it writes them.
	sent := 0
	for l := first; ; {
		if l.err != nil {
			return fmt.Errorf("read standard input after line %d: %w", l.n, l.err)
		}
		if l.eof {
			break
		}
		if err := checkLine(l, checkJSON); err != nil {
			return err
		}
		if f.id != "" && sent == 1 {
			return fmt.Errorf("standard input line %d: --id names one event but this is the second; leave out --id to give each event a new id", l.n)
		}
		if err := send(l.data); err != nil {
			return fmt.Errorf("standard input line %d: %w", l.n, err)
		}
		sent++
		select {
		case <-cmd.Context().Done():
			if err := interrupted(cmd.Context()); err != nil {
				return err
			}
			return cmd.Context().Err()
		case l = <-lines:
		}
	}
	return b.Close()
}

// checkLine refuses a line of standard input that is not valid JSON when JSON is expected.
func checkLine(l line, checkJSON bool) error {
	if l.err == nil && !l.eof && checkJSON && !json.Valid(l.data) {
		return fmt.Errorf("standard input line %d: not valid JSON; publish reads one event per line, each line the data of one event (set --content-type for other data): %.60q", l.n, l.data)
	}
	return nil
}

// line is one non-empty line of standard input (n counts from 1 and includes empty lines), or
// its end (eof) or a read error.
type line struct {
	n    int
	data []byte
	eof  bool
	err  error
}

// readLines reads r line by line into the returned channel until its end, an error or ctx is
// done. The reader goroutine may stay blocked in a read of r when ctx ends (a terminal read
// cannot be interrupted); the process exits soon after.
func readLines(ctx context.Context, r io.Reader) <-chan line {
	out := make(chan line)
	go func() {
		emit := func(l line) bool {
			select {
			case out <- l:
				return true
			case <-ctx.Done():
				return false
			}
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
		n := 0
		for sc.Scan() {
			n++
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			if !emit(line{n: n, data: bytes.Clone(text)}) {
				return
			}
		}
		emit(line{n: n, eof: sc.Err() == nil, err: sc.Err()})
	}()
	return out
}
