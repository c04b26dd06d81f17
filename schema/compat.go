package schema

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hamba/avro/v2"
)

// Compatibility levels between versions of an event type's schema, as the Confluent registry
// names them.
const (
	// Backward: a consumer with the newer schema reads data written with the older one (fields
	// may be removed, or added with a default). Consumers upgrade first.
	Backward = "backward"
	// Forward: a consumer with the older schema reads data written with the newer one.
	Forward = "forward"
	// Full is both.
	Full = "full"
)

// ErrIncompatible is wrapped by an Incompatibility.
var ErrIncompatible = errors.New("incompatible schema change")

// Incompatibility is one incompatible change found by a check.
type Incompatibility struct {
	// EventType is the event type, or the registry subject when checking against a registry.
	EventType string
	// Older and Newer say which two schemas were compared ("catalog version 1", "subject X
	// version 3", ...).
	Older, Newer string
	// Reason names the field and what is wrong with it.
	Reason string
}

func (i Incompatibility) Error() string {
	return fmt.Sprintf("%s: %s -> %s: %s", i.EventType, i.Older, i.Newer, i.Reason)
}

func (i Incompatibility) Unwrap() error { return ErrIncompatible }

// ParseLevel checks a level name (case-insensitive).
func ParseLevel(s string) (string, error) {
	switch l := strings.ToLower(s); l {
	case Backward, Forward, Full:
		return l, nil
	}
	return "", fmt.Errorf("compatibility level %q: want backward, forward or full", s)
}

// Compatible checks that newer may follow older at level and returns why not, naming the field
// (e.g. "field enrollment.grade: added without a default, so data written with the older
// schema cannot be read"), or "" when it may.
func Compatible(level string, older, newer avro.Schema) string {
	if level == Backward || level == Full {
		if r := readable(newer, older, ""); r != "" {
			return "backward: the newer schema cannot read data written with the older: " + r
		}
	}
	if level == Forward || level == Full {
		if r := readable(older, newer, ""); r != "" {
			return "forward: the older schema cannot read data written with the newer: " + r
		}
	}
	return ""
}

// readable reports why reader cannot read what writer wrote, naming the field path, or "".
func readable(reader, writer avro.Schema, path string) string {
	reader, writer = deref(reader), deref(writer)
	rr, rok := reader.(*avro.RecordSchema)
	wr, wok := writer.(*avro.RecordSchema)
	if rok && wok {
		if rr.FullName() != wr.FullName() && !hasAlias(rr, wr.FullName()) {
			return fmt.Sprintf("%s: record %s is now %s", where(path), wr.FullName(), rr.FullName())
		}
		for _, rf := range rr.Fields() {
			wf := fieldOf(wr, rf)
			if wf == nil {
				if rf.HasDefault() {
					continue
				}
				return fmt.Sprintf("field %s: in the reader without a default and absent from the writer", join(path, rf.Name()))
			}
			if r := readable(rf.Type(), wf.Type(), join(path, rf.Name())); r != "" {
				return r
			}
		}
		return ""
	}
	if err := avro.NewSchemaCompatibility().Compatible(reader, writer); err != nil {
		return fmt.Sprintf("%s: %v", where(path), err)
	}
	return ""
}

func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

func hasAlias(r *avro.RecordSchema, name string) bool {
	for _, a := range r.Aliases() {
		if a == name {
			return true
		}
	}
	return false
}

func fieldOf(w *avro.RecordSchema, rf *avro.Field) *avro.Field {
	for _, f := range w.Fields() {
		if f.Name() == rf.Name() {
			return f
		}
	}
	for _, f := range w.Fields() {
		for _, a := range rf.Aliases() {
			if f.Name() == a {
				return f
			}
		}
	}
	return nil
}

func where(path string) string {
	if path == "" {
		return "the schema"
	}
	return "field " + path
}

// CheckCatalog checks each event type's versions in c, each against the one before, at level.
func CheckCatalog(c *Catalog, level string) []Incompatibility {
	var out []Incompatibility
	for _, t := range c.Types() {
		vs := c.Versions(t)
		for i := 1; i < len(vs); i++ {
			if r := Compatible(level, vs[i-1].Schema, vs[i].Schema); r != "" {
				out = append(out, Incompatibility{EventType: t, Older: fmt.Sprintf("version %d", vs[i-1].Number), Newer: fmt.Sprintf("version %d", vs[i].Number), Reason: r})
			}
		}
	}
	return out
}

// CheckAgainstCatalog checks the newest schema of each event type in c against the newest of
// the same type in older (another catalog, e.g. the one in production), at level. Types only
// in one of them are not compared.
func CheckAgainstCatalog(c, older *Catalog, level string) []Incompatibility {
	var out []Incompatibility
	for _, t := range c.Types() {
		was, err := older.Latest(t)
		if err != nil {
			continue
		}
		now, _ := c.Latest(t)
		if r := Compatible(level, was.Schema, now.Schema); r != "" {
			out = append(out, Incompatibility{EventType: t, Older: was.File, Newer: now.File, Reason: r})
		}
	}
	return out
}

// CheckAgainstRegistry checks the newest schema of each event type in c against the latest
// version of every registry subject that holds that record (Open edX's subjects are
// "<topic>-<event type>.CloudEvent", one per topic), at level. It returns the subjects
// compared, sorted.
func CheckAgainstRegistry(ctx context.Context, c *Catalog, reg *Registry, level string) ([]string, []Incompatibility, error) {
	subjects, err := reg.Subjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(subjects)
	var (
		compared []string
		out      []Incompatibility
	)
	for _, t := range c.Types() {
		now, _ := c.Latest(t)
		suffix := ValueSubject("", now.Schema) // "-<record full name>"
		for _, s := range subjects {
			if !strings.HasSuffix(s, suffix) {
				continue
			}
			latest, err := reg.Latest(ctx, s)
			if err != nil {
				return nil, nil, err
			}
			was, err := avro.ParseWithCache(latest.Schema, "", &avro.SchemaCache{})
			if err != nil {
				return nil, nil, fmt.Errorf("subject %s version %d does not parse: %w", s, latest.Version, err)
			}
			compared = append(compared, s)
			if r := Compatible(level, was, now.Schema); r != "" {
				out = append(out, Incompatibility{EventType: t, Older: fmt.Sprintf("subject %s version %d", s, latest.Version), Newer: now.File, Reason: r})
			}
		}
	}
	return compared, out, nil
}
