package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// dlqFlags are the flags the dlq subcommands share.
type dlqFlags struct {
	topic, poisonTopic, group, dlqGroup string
	reasons, ids                        []string
	since, until                        string
	limit, window                       int
	wait                                time.Duration
	dryRun, asJSON                      bool
	progress                            string

	// parsed
	from, to time.Time
}

// dlqReaderGroup is the consumer group the dlq commands read poison topics in. Acking in it is
// what takes a message out of the poison queue.
const dlqReaderGroup = "eventbus-dlq"

func newDLQCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, redrive and purge the poison queue (dead-letter queue) of a topic",
		Long: `The poison queue of topic T is the topic the router's poison middleware stores failed messages
in: router.poison.topic of the config file, by default T.poison. Every message there keeps its
payload, key and headers, plus its provenance: reason, error, handler, consumer group, broker
position, attempts, first and last failure, host.

The dlq commands read it as consumer group ` + dlqReaderGroup + ` (--dlq-group) on backends where
a new group sees earlier messages (Kafka); on RabbitMQ, where a group's queue holds only what
arrived after it existed, they read in the config's consumer group, whose queue of the poison
topic the poisoned messages were routed to. list and show
acknowledge nothing. redrive sends each selected message back to the topic it failed on, with
its key and event id and an incremented eventbus_redrive_count header, and only then
acknowledges it in the poison queue; purge acknowledges the selected messages without sending
them anywhere. Messages the filters do not select stay in the poison queue: when a run acted on
something, they are appended to it again (so a Kafka offset can be committed past them).

A run reads until no message has arrived for --wait, or --limit messages were selected.`,
	}
	cmd.AddCommand(
		newDLQSubCmd(g, "list", "List poisoned messages, one line each", dlqList),
		newDLQSubCmd(g, "show", "Show poisoned messages in full (headers, payload, provenance) as JSON lines", dlqShow),
		newDLQSubCmd(g, "redrive", "Send poisoned messages back to their topic, then remove them from the poison queue", dlqRedrive),
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
	cmd := &cobra.Command{
		Use:   name + " --topic T [--group G] [--reason R] [--id ID] [--since T] [--until T]",
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runDLQ(g, f, cmd, action) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "the topic whose poison queue to read (required)")
	fl.StringVar(&f.poisonTopic, "poison-topic", "", "the poison topic (default: router.poison.topic of the config, e.g. T.poison)")
	fl.StringVar(&f.group, "group", "", "only messages poisoned in this consumer group")
	fl.StringArrayVar(&f.reasons, "reason", nil, "only messages poisoned for this reason: invalid, permanent, exhausted, parked (repeatable)")
	fl.StringArrayVar(&f.ids, "id", nil, "only the message with this event id (repeatable)")
	fl.StringVar(&f.since, "since", "", "only messages whose last failure is at or after this time (RFC 3339, or a duration such as 2h for that long ago)")
	fl.StringVar(&f.until, "until", "", "only messages whose last failure is before this time (RFC 3339 or a duration ago)")
	fl.IntVar(&f.limit, "limit", 0, "stop after this many selected messages (0: no limit)")
	fl.DurationVar(&f.wait, "wait", 10*time.Second, "stop when no message has arrived for this long")
	fl.StringVar(&f.dlqGroup, "dlq-group", "", "consumer group the poison topic is read in (default: "+dlqReaderGroup+
		" on backends whose new groups see earlier messages, as Kafka's do; otherwise the config's consumer group,"+
		" which owns the poison queue on RabbitMQ)")
	fl.IntVar(&f.window, "window", 10000, "messages read ahead without acknowledging them, per partition or stream")
	switch action {
	case dlqList:
		fl.BoolVar(&f.asJSON, "json", false, "print JSON lines instead of a table")
	case dlqRedrive, dlqPurge:
		fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be done, change nothing")
		fl.StringVar(&f.progress, "progress", "auto", "progress bar on standard error: auto (when it is a terminal), always or never")
	}
	_ = cmd.MarkFlagRequired("topic")
	return cmd
}

func (f *dlqFlags) parse(now time.Time) error {
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
	if f.window < 1 {
		errs = append(errs, fmt.Errorf("--window %d: must be at least 1", f.window))
	}
	if f.wait <= 0 {
		errs = append(errs, fmt.Errorf("--wait %s: must be positive", f.wait))
	}
	switch f.progress {
	case "", "auto", "always", "never":
	default:
		errs = append(errs, fmt.Errorf("--progress %q: want auto, always or never", f.progress))
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

func (f *dlqFlags) selects(p poisoned) bool {
	if p.err != nil {
		return false // not written by the poison middleware: never acted on
	}
	if p.prov.Topic != f.topic {
		return false // a poison topic shared by several topics
	}
	if f.group != "" && p.prov.Group != f.group {
		return false
	}
	if len(f.reasons) > 0 && !contains(f.reasons, string(p.prov.Reason)) {
		return false
	}
	if len(f.ids) > 0 && !contains(f.ids, p.msg.UUID) && !contains(f.ids, p.msg.Metadata.Get(bus.HeaderID)) {
		return false
	}
	if !f.from.IsZero() && p.prov.LastFailure.Before(f.from) {
		return false
	}
	if !f.to.IsZero() && !p.prov.LastFailure.Before(f.to) {
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runDLQ(g *globals, f *dlqFlags, cmd *cobra.Command, action dlqAction) error {
	if err := f.parse(time.Now()); err != nil {
		return err
	}
	cfg, err := g.loadConfig(cmd)
	if err != nil {
		return err
	}
	routerCfg, err := router.LoadConfig(cfg)
	if err != nil {
		return err
	}
	if f.poisonTopic == "" {
		f.poisonTopic = routerCfg.Poison.PoisonTopic(f.topic)
	}
	logger, err := g.logger(cmd)
	if err != nil {
		return err
	}
	b, err := openPoisonReader(cmd, cfg, f, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	msgs, err := b.Subscriber.Subscribe(ctx, f.poisonTopic)
	if err != nil {
		return fmt.Errorf("subscribe to poison topic %s: %w", f.poisonTopic, err)
	}

	run := &dlqRun{f: f, b: b, out: cmd.OutOrStdout(), action: action}
	if action == dlqRedrive || action == dlqPurge {
		run.bar = newProgress(f, cmd.ErrOrStderr(), action)
	}
	if action == dlqList && !f.asJSON {
		run.table = tabwriter.NewWriter(run.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(run.table, "ID\tKEY\tREASON\tHANDLER\tGROUP\tATTEMPTS\tLAST FAILURE\tPOSITION\tREDRIVES\tERROR")
	}
	readErr := run.read(ctx, msgs)
	finishErr := run.finish()
	if err := errors.Join(readErr, finishErr); err != nil {
		return err
	}
	return b.Close()
}

// openPoisonReader opens the bus the poison topic is read through: a pipelining subscriber (dlq
// reads ahead without acknowledging) in the --dlq-group, or by default in a group of its own
// where the backend lets a new group see what was published before it (Replay), and in the
// configured consumer group where it does not: on RabbitMQ, that group's queue is the one the
// poisoned messages were kept in.
func openPoisonReader(cmd *cobra.Command, cfg *config.Config, f *dlqFlags, logger *slog.Logger) (*bus.Bus, error) {
	open := func(group string) (*bus.Bus, error) {
		opts := []bus.Option{bus.WithLogger(logger), bus.WithStartFrom(bus.StartOldest),
			bus.WithMaxInFlight(f.window), bus.Require(bus.Pipelining)}
		if group != "" {
			opts = append(opts, bus.WithConsumerGroup(group))
		}
		b, err := bus.Open(cmd.Context(), cfg, opts...)
		if err != nil {
			return nil, fmt.Errorf("dlq reads the poison queue without acknowledging as it goes: %w", err)
		}
		return b, nil
	}
	if f.dlqGroup != "" {
		return open(f.dlqGroup)
	}
	b, err := open(dlqReaderGroup)
	if err != nil || b.Capabilities().Replay {
		return b, err
	}
	if err := b.Close(); err != nil {
		return nil, err
	}
	return open("")
}

type dlqRun struct {
	f      *dlqFlags
	b      *bus.Bus
	out    io.Writer
	action dlqAction
	table  *tabwriter.Writer
	bar    *progressbar.ProgressBar

	total, selected, acted int
	kept                   []poisoned // read, not acted on, not yet acked
	foreign                int        // messages without provenance
}

// read consumes the poison topic until it has been quiet for --wait or --limit messages were
// selected, acting on each selected message as it arrives.
func (r *dlqRun) read(ctx context.Context, msgs <-chan *message.Message) error {
	idle := time.NewTimer(r.f.wait)
	defer idle.Stop()
	for r.f.limit == 0 || r.selected < r.f.limit {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-idle.C:
			return nil
		case m, ok := <-msgs:
			if !ok {
				return fmt.Errorf("subscription to %s ended after %d messages", r.f.poisonTopic, r.total)
			}
			r.total++
			p := poisoned{msg: m}
			p.prov, p.err = middleware.ParseProvenance(m)
			if p.err != nil {
				r.foreign++
			}
			if !r.f.selects(p) {
				r.kept = append(r.kept, p)
			} else {
				r.selected++
				if err := r.act(p); err != nil {
					return err
				}
			}
			idle.Reset(r.f.wait)
		}
	}
	return nil
}

func (r *dlqRun) act(p poisoned) error {
	switch r.action {
	case dlqList:
		r.kept = append(r.kept, p)
		return r.list(p)
	case dlqShow:
		r.kept = append(r.kept, p)
		return r.show(p)
	}
	if r.f.dryRun {
		r.kept = append(r.kept, p)
		verb := "purge"
		if r.action == dlqRedrive {
			verb = fmt.Sprintf("redrive to %s (redrive %d)", p.prov.Topic, p.prov.RedriveCount+1)
		}
		fmt.Fprintf(r.out, "would %s %s (%s, key %q)\n", verb, p.msg.UUID, p.prov.Reason, p.msg.Metadata.Get(bus.HeaderKey))
		return nil
	}
	if r.action == dlqRedrive {
		rm := middleware.Redriven(p.msg, p.prov)
		if err := r.b.Publisher.Publish(p.prov.Topic, rm); err != nil {
			p.msg.Nack()
			return fmt.Errorf("redrive %s to %s: %w (it stays in the poison queue)", p.msg.UUID, p.prov.Topic, err)
		}
	}
	p.msg.Ack()
	r.acted++
	if r.bar != nil {
		_ = r.bar.Add(1)
	}
	return nil
}

func (r *dlqRun) list(p poisoned) error {
	if r.f.asJSON {
		return json.NewEncoder(r.out).Encode(showRecord(p))
	}
	errText := strings.ReplaceAll(p.prov.Error, "\n", " ")
	if len(errText) > 80 {
		errText = errText[:77] + "..."
	}
	_, err := fmt.Fprintf(r.table, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", p.msg.UUID, p.msg.Metadata.Get(bus.HeaderKey), p.prov.Reason,
		p.prov.Handler, p.prov.Group, p.prov.Attempts, p.prov.LastFailure.Format(time.RFC3339), p.prov.Position, p.prov.RedriveCount, errText)
	return err
}

func (r *dlqRun) show(p poisoned) error {
	enc := json.NewEncoder(r.out)
	enc.SetIndent("", "  ")
	return enc.Encode(showRecord(p))
}

// dlqRecord is the JSON form of a poisoned message.
type dlqRecord struct {
	ID            string            `json:"id"`
	Key           string            `json:"key,omitempty"`
	Reason        string            `json:"reason"`
	Error         string            `json:"error"`
	Handler       string            `json:"handler"`
	Topic         string            `json:"topic"`
	Group         string            `json:"group,omitempty"`
	Position      string            `json:"position,omitempty"`
	Attempts      int               `json:"attempts"`
	FirstFailure  time.Time         `json:"first_failure"`
	LastFailure   time.Time         `json:"last_failure"`
	Host          string            `json:"host"`
	ParkedBehind  string            `json:"parked_behind,omitempty"`
	RedriveCount  int               `json:"redrive_count"`
	Headers       map[string]string `json:"headers"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadText   *string           `json:"payload_text,omitempty"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
}

func showRecord(p poisoned) dlqRecord {
	rec := dlqRecord{
		ID: p.msg.UUID, Key: p.msg.Metadata.Get(bus.HeaderKey), Reason: string(p.prov.Reason), Error: p.prov.Error,
		Handler: p.prov.Handler, Topic: p.prov.Topic, Group: p.prov.Group, Attempts: p.prov.Attempts,
		FirstFailure: p.prov.FirstFailure, LastFailure: p.prov.LastFailure, Host: p.prov.Host,
		ParkedBehind: p.prov.ParkedBehind, RedriveCount: p.prov.RedriveCount, Headers: p.msg.Metadata,
	}
	if p.prov.Position.Backend != "" {
		rec.Position = p.prov.Position.String()
	}
	switch pl := []byte(p.msg.Payload); {
	case len(pl) == 0:
	case json.Valid(pl):
		rec.Payload = pl
	case utf8.Valid(pl):
		s := string(pl)
		rec.PayloadText = &s
	default:
		rec.PayloadBase64 = pl
	}
	return rec
}

// finish prints the summary and settles the messages the run kept: appended again to the poison
// queue (then acked) when the run acked anything, else left unacknowledged.
func (r *dlqRun) finish() error {
	if r.table != nil {
		if err := r.table.Flush(); err != nil {
			return err
		}
	}
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	var err error
	if r.acted > 0 && len(r.kept) > 0 {
		requeued := 0
		for _, p := range r.kept {
			if perr := r.b.Publisher.Publish(r.f.poisonTopic, p.msg.Copy()); perr != nil {
				err = fmt.Errorf("append %s to %s again: %w (%d of %d kept messages appended; the rest stay where they were)", p.msg.UUID, r.f.poisonTopic, perr, requeued, len(r.kept))
				break
			}
			p.msg.Ack()
			requeued++
		}
	}
	for _, p := range r.kept {
		p.msg.Nack() // no-op for those acked above; the rest are not acknowledged
	}
	var summary string
	switch r.action {
	case dlqList, dlqShow:
		summary = fmt.Sprintf("%d of %d messages in %s selected", r.selected, r.total, r.f.poisonTopic)
	case dlqRedrive:
		summary = fmt.Sprintf("redrove %d of %d messages in %s", r.acted, r.total, r.f.poisonTopic)
	case dlqPurge:
		summary = fmt.Sprintf("purged %d of %d messages in %s", r.acted, r.total, r.f.poisonTopic)
	}
	if r.f.dryRun {
		summary = fmt.Sprintf("dry run: %d of %d messages in %s selected; nothing changed", r.selected, r.total, r.f.poisonTopic)
	}
	if r.foreign > 0 {
		summary += fmt.Sprintf(" (%d without eventbus provenance, left alone)", r.foreign)
	}
	if r.action == dlqList && r.f.asJSON {
		return err // keep standard output pure JSON lines
	}
	fmt.Fprintln(r.out, summary)
	return err
}

func newProgress(f *dlqFlags, w io.Writer, action dlqAction) *progressbar.ProgressBar {
	show := f.progress == "always"
	if f.progress == "auto" || f.progress == "" {
		if file, ok := w.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
			show = true
		}
	}
	if !show || f.dryRun {
		return nil
	}
	desc := "redriving"
	if action == dlqPurge {
		desc = "purging"
	}
	return progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionSpinnerType(14),
		// Render only from Add: the spinner's own ticker goroutine renders without the bar's
		// lock (a data race in v3.18.0) and outlives nothing that could stop it early.
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}
