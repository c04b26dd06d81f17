package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

var (
	// errStopScan ends a scan early without failing it (--limit reached).
	errStopScan = errors.New("scan stopped")
)

var (
	dlqKeep   = bus.PoisonDecision{}             // it stays in the poison queue
	dlqRemove = bus.PoisonDecision{Remove: true} // it leaves the poison queue
)

// openPoisonQueue opens the reader of f.topic's poison queue through the bus's backend.
func openPoisonQueue(ctx context.Context, b *bus.Bus, f *dlqFlags, action dlqAction) (bus.PoisonQueue, error) {
	return b.PoisonQueue(ctx, bus.PoisonQueueOptions{Topic: f.topic, PoisonTopic: f.poisonTopic, Group: f.dlqGroup, Redrive: action == dlqRedrive})
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
	if len(f.reasons) > 0 && !slices.Contains(f.reasons, string(p.prov.Reason)) {
		return false
	}
	if len(f.ids) > 0 && !slices.ContainsFunc(f.ids, func(id string) bool { return idMatches(p, id) }) {
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

// idMatches reports whether an --id value (a prefix) matches the message's id or event id.
func idMatches(p poisoned, prefix string) bool {
	return strings.HasPrefix(p.msg.UUID, prefix) || strings.HasPrefix(p.msg.Metadata.Get(bus.HeaderID), prefix)
}

func runDLQ(g *globals, f *dlqFlags, cmd *cobra.Command, action dlqAction) error {
	if err := f.parse(time.Now(), action); err != nil {
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
	ctx := cmd.Context()
	b, err := bus.Open(ctx, cfg, bus.WithLogger(logger))
	if err != nil {
		return err
	}
	defer b.Close()
	q, err := openPoisonQueue(ctx, b, f, action)
	if err != nil {
		return err
	}
	defer q.Close()

	run := &dlqRun{f: f, b: b, q: q, action: action, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}
	runErr := run.run(ctx)
	return errors.Join(runErr, q.Close(), b.Close())
}

type dlqRun struct {
	f           *dlqFlags
	b           *bus.Bus
	q           bus.PoisonQueue
	action      dlqAction
	out, errOut io.Writer
}

func (r *dlqRun) acts() bool { return (r.action == dlqRedrive || r.action == dlqPurge) && !r.f.dryRun }

func (r *dlqRun) run(ctx context.Context) error {
	count, err := r.q.Open(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", r.q.Describe(), err)
	}
	if count == 0 {
		r.summary(&dlqPass{})
		return nil
	}
	// A first pass changes nothing: it resolves --id prefixes, counts what a redrive or purge
	// will do (for the progress bar) and lets the backend bound what the second pass touches.
	var plan *dlqPass
	if len(r.f.ids) > 0 || r.acts() {
		plan = r.newPass(false, nil)
		if err := r.scan(ctx, plan, false); err != nil {
			return err
		}
		if len(r.f.ids) > 0 {
			changed, err := r.resolveIDs(plan)
			if err != nil {
				return err
			}
			if changed { // an exact id won over longer ones it prefixes: plan again with it
				plan = r.newPass(false, nil)
				if err := r.scan(ctx, plan, false); err != nil {
					return err
				}
			}
		}
	}
	var bar *progressbar.ProgressBar
	if r.acts() {
		bar = newProgress(r.f, r.errOut, r.action, plan.selected-plan.heldBack)
	}
	final := r.newPass(true, bar)
	if final.table != nil {
		fmt.Fprintln(final.table, "ID\tKEY\tREASON\tHANDLER\tGROUP\tATTEMPTS\tLAST FAILURE\tPOSITION\tREDRIVES\tERROR")
	}
	scanErr := r.scan(ctx, final, r.acts())
	if final.table != nil {
		scanErr = errors.Join(scanErr, final.table.Flush())
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if plan != nil {
		// The acting pass may stop at the last record it removes (Kafka): the plan saw them all.
		final.total, final.selected, final.heldBack, final.foreign = plan.total, plan.selected, plan.heldBack, plan.foreign
	}
	r.summary(final)
	if scanErr != nil && r.acts() {
		return fmt.Errorf("%s: %w (%d of the selected messages were %s before it stopped)", r.q.Describe(), scanErr, final.acted, r.done())
	}
	if scanErr != nil {
		return fmt.Errorf("%s: %w", r.q.Describe(), scanErr)
	}
	return nil
}

func (r *dlqRun) scan(ctx context.Context, p *dlqPass, act bool) error {
	err := r.q.Scan(ctx, act, p.visit)
	if errors.Is(err, errStopScan) {
		return nil
	}
	return err
}

func (r *dlqRun) done() string {
	if r.action == dlqRedrive {
		return "redriven"
	}
	return "purged"
}

// resolveIDs replaces each --id prefix by the one id it stands for: an id equal to it, else the
// only id starting with it. It fails listing the matches when there are several, and when
// there is none.
func (r *dlqRun) resolveIDs(plan *dlqPass) (changed bool, err error) {
	var errs []error
	resolved := make([]string, 0, len(r.f.ids))
	for _, prefix := range r.f.ids {
		matches := plan.idMatches[prefix]
		switch {
		case slices.Contains(matches, prefix):
			changed = changed || len(matches) > 1
			resolved = append(resolved, prefix)
		case len(matches) == 1:
			resolved = append(resolved, matches[0])
		case len(matches) == 0:
			errs = append(errs, fmt.Errorf("--id %q: no message of topic %s in the poison queue has an id starting so", prefix, r.f.topic))
		default:
			sort.Strings(matches)
			errs = append(errs, fmt.Errorf("--id %q is ambiguous: it starts the ids %s", prefix, strings.Join(matches, ", ")))
		}
	}
	r.f.ids = resolved
	return changed, errors.Join(errs...)
}

// dlqPass is one scan of the poison queue and what it counted.
type dlqPass struct {
	r     *dlqRun
	final bool // prints and acts; otherwise only decides
	table *tabwriter.Writer
	bar   *progressbar.ProgressBar

	total, selected, acted, heldBack, duplicates, foreign int
	seen                                                  map[string]bool
	idMatches                                             map[string][]string // --id prefix → distinct ids
}

func (r *dlqRun) newPass(final bool, bar *progressbar.ProgressBar) *dlqPass {
	p := &dlqPass{r: r, final: final, bar: bar, seen: map[string]bool{}, idMatches: map[string][]string{}}
	if final && r.action == dlqList && !r.f.asJSON {
		p.table = tabwriter.NewWriter(r.out, 0, 0, 2, ' ', 0)
	}
	return p
}

func (p *dlqPass) visit(rec bus.PoisonRecord) (bus.PoisonDecision, error) {
	r, f := p.r, p.r.f
	p.total++
	m := poisoned{msg: rec.Msg}
	m.prov, m.err = middleware.ParseProvenance(rec.Msg)
	if m.err != nil {
		p.foreign++
		return dlqKeep, nil
	}
	if !p.final && len(f.ids) > 0 && m.prov.Topic == f.topic {
		for _, prefix := range f.ids {
			for _, id := range []string{m.msg.UUID, m.msg.Metadata.Get(bus.HeaderID)} {
				if id != "" && strings.HasPrefix(id, prefix) && !slices.Contains(p.idMatches[prefix], id) {
					p.idMatches[prefix] = append(p.idMatches[prefix], id)
				}
			}
		}
	}
	if !f.selects(m) {
		return dlqKeep, nil
	}
	if f.limit > 0 && p.selected >= f.limit {
		return dlqKeep, errStopScan
	}
	p.selected++
	switch r.action {
	case dlqList:
		if p.final {
			return dlqKeep, p.list(m)
		}
		return dlqKeep, nil
	case dlqShow:
		if p.final {
			return dlqKeep, json.NewEncoder(r.out).Encode(showRecord(m))
		}
		return dlqKeep, nil
	}
	// redrive, purge
	if p.duplicate(m, rec.Position) {
		p.duplicates++
		if r.acts() {
			if !p.final {
				return dlqRemove, nil
			}
			// The same message as one handled before in this run: removed, not redriven.
			return bus.PoisonDecision{Remove: true, Done: p.count}, nil
		}
		return dlqKeep, nil
	}
	if r.action == dlqRedrive && f.maxRedrives > 0 && m.prov.RedriveCount >= f.maxRedrives {
		p.heldBack++
		if p.final && f.dryRun {
			fmt.Fprintf(r.out, "would leave %s (redriven %d times already, --max-redrives %d)\n", m.msg.UUID, m.prov.RedriveCount, f.maxRedrives)
		}
		return dlqKeep, nil
	}
	if f.dryRun {
		if p.final {
			verb := "purge"
			if r.action == dlqRedrive {
				verb = fmt.Sprintf("redrive to %s (redrive %d)", m.prov.Topic, m.prov.RedriveCount+1)
			}
			fmt.Fprintf(r.out, "would %s %s (%s, key %q)\n", verb, m.msg.UUID, m.prov.Reason, m.msg.Metadata.Get(bus.HeaderKey))
		}
		return dlqKeep, nil
	}
	if !p.final {
		return dlqRemove, nil
	}
	d := bus.PoisonDecision{Remove: true, Done: p.count}
	if r.action == dlqRedrive {
		d.Send, d.Topic, d.Group = redriven(m, rec.Position), m.prov.Topic, m.prov.Group
	}
	return d, nil
}

func (p *dlqPass) count() {
	p.acted++
	if p.bar != nil {
		_ = p.bar.Add(1)
	}
}

// duplicate reports whether the run already met a copy of m, the record at position: the same
// record appended twice (a Kafka run stopped between appending a kept record and committing
// past it), or a redrive that happened twice because a run stopped between sending it and
// removing its record: the record itself and its copy poisoned again (HeaderRedriveID names
// the record), or two such copies.
func (p *dlqPass) duplicate(m poisoned, position string) bool {
	redrive := func(from string) string {
		return strings.Join([]string{"redrive", m.msg.UUID, m.prov.Handler, from}, "\x00")
	}
	keys := []string{
		strings.Join([]string{"copy", m.msg.UUID, m.prov.Handler, m.prov.Group, m.prov.LastFailure.Format(time.RFC3339Nano)}, "\x00"),
		redrive(position),
	}
	if from := m.msg.Metadata.Get(middleware.HeaderRedriveID); from != "" {
		keys = append(keys, redrive(from))
	}
	dup := false
	for _, k := range keys {
		dup = dup || p.seen[k]
		p.seen[k] = true
	}
	return dup
}

// redriven is the message a redrive sends: m without its provenance, counted, addressed to the
// consumer group whose handler failed, and marked with the poison record it came from.
func redriven(m poisoned, position string) *message.Message {
	rm := middleware.Redriven(m.msg, m.prov)
	rm.Metadata.Set(middleware.HeaderRedriveID, position)
	if m.prov.Group != "" {
		rm.Metadata.Set(middleware.HeaderRedriveGroup, m.prov.Group)
	} else {
		delete(rm.Metadata, middleware.HeaderRedriveGroup)
	}
	return rm
}
func (p *dlqPass) list(m poisoned) error {
	if p.r.f.asJSON {
		return json.NewEncoder(p.r.out).Encode(showRecord(m))
	}
	errText := strings.ReplaceAll(m.prov.Error, "\n", " ")
	if len(errText) > 80 {
		errText = errText[:77] + "..."
	}
	_, err := fmt.Fprintf(p.table, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", m.msg.UUID, m.msg.Metadata.Get(bus.HeaderKey), m.prov.Reason,
		m.prov.Handler, m.prov.Group, m.prov.Attempts, m.prov.LastFailure.Format(time.RFC3339), m.prov.Position, m.prov.RedriveCount, errText)
	return err
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

func newProgress(f *dlqFlags, w io.Writer, action dlqAction, total int) *progressbar.ProgressBar {
	show := f.progress == "always"
	if f.progress == "auto" || f.progress == "" {
		if file, ok := w.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
			show = true
		}
	}
	if !show || f.dryRun || total <= 0 {
		return nil
	}
	desc := "redriving"
	if action == dlqPurge {
		desc = "purging"
	}
	return progressbar.NewOptions(total,
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

// summary tells on standard error what the run saw and did; standard output carries only data.
func (r *dlqRun) summary(p *dlqPass) {
	var s string
	switch {
	case r.f.dryRun:
		s = fmt.Sprintf("dry run: %d of %d messages in %s selected; nothing changed", p.selected, p.total, r.f.poisonTopic)
	case r.action == dlqRedrive:
		s = fmt.Sprintf("redrove %d of %d messages in %s", p.acted-p.duplicates, p.total, r.f.poisonTopic)
	case r.action == dlqPurge:
		s = fmt.Sprintf("purged %d of %d messages in %s", p.acted, p.total, r.f.poisonTopic)
	default:
		s = fmt.Sprintf("%d of %d messages in %s selected", p.selected, p.total, r.f.poisonTopic)
	}
	if p.heldBack > 0 {
		s += fmt.Sprintf("; %d left in the queue, redriven %d times already (--max-redrives)", p.heldBack, r.f.maxRedrives)
	}
	if p.duplicates > 0 && r.action == dlqRedrive {
		s += fmt.Sprintf("; %d duplicate copies removed without redriving", p.duplicates)
	}
	if p.foreign > 0 {
		s += fmt.Sprintf(" (%d without eventbus provenance, left alone)", p.foreign)
	}
	fmt.Fprintln(r.errOut, s)
}
