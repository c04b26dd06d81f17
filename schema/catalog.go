package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// ErrUnknownEventType is wrapped by what the codec and the catalog return for an event type that
// has no schema in the catalog.
var ErrUnknownEventType = errors.New("no schema for event type")

// Version is one version of an event type's schema.
type Version struct {
	// Number is the version, from the file name (<n>.avsc); 1 is the first.
	Number int
	// File is the file it was loaded from.
	File string
	// Text is the schema as written in the file.
	Text string
	// Schema is the parsed schema.
	Schema avro.Schema
}

// Catalog holds the schemas of event types, each with its versions. It is read-only once
// loaded and safe for concurrent use.
//
// On disk a catalog is a directory with one sub-directory per event type, named after it (the
// ce_type, e.g. org.openedx.learning.course.enrollment.created.v1), holding one file per schema
// version named <n>.avsc (1.avsc, 2.avsc, ...). Events are written with the highest version;
// `eventbus schema check` verifies that each version is compatible with the one before.
type Catalog struct {
	// Dir is the directory the catalog was loaded from.
	Dir   string
	types map[string][]Version
}

// LoadCatalog reads the catalog in dir. A file that is not valid Avro, a file name that is not
// <n>.avsc, or a gap in an event type's version numbers is an error naming the file.
func LoadCatalog(dir string) (*Catalog, error) {
	c := &Catalog{Dir: dir, types: map[string][]Version{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("schema catalog: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			if strings.HasSuffix(e.Name(), ".avsc") {
				return nil, fmt.Errorf("schema catalog %s: %s: a schema file must sit in a directory named after its event type, as <event type>/<n>.avsc", dir, e.Name())
			}
			continue
		}
		eventType := e.Name()
		files, err := fs.Glob(os.DirFS(filepath.Join(dir, eventType)), "*.avsc")
		if err != nil {
			return nil, fmt.Errorf("schema catalog %s: %w", dir, err)
		}
		for _, name := range files {
			path := filepath.Join(dir, eventType, name)
			n, err := strconv.Atoi(strings.TrimSuffix(name, ".avsc"))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("schema catalog: %s: the file name must be the version number, <n>.avsc with n >= 1", path)
			}
			text, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("schema catalog: %w", err)
			}
			s, err := avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
			if err != nil {
				return nil, fmt.Errorf("schema catalog: %s: %w", path, err)
			}
			c.types[eventType] = append(c.types[eventType], Version{Number: n, File: path, Text: string(text), Schema: s})
		}
	}
	for t, vs := range c.types {
		sort.Slice(vs, func(i, j int) bool { return vs[i].Number < vs[j].Number })
		for i, v := range vs {
			if v.Number != i+1 {
				return nil, fmt.Errorf("schema catalog: %s: version %d follows version %d; versions of %s must be numbered 1, 2, 3 and so on", v.File, v.Number, i, t)
			}
		}
	}
	return c, nil
}

// Types returns the catalog's event types, sorted.
func (c *Catalog) Types() []string {
	out := make([]string, 0, len(c.types))
	for t := range c.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Versions returns the versions of eventType, oldest first; nil when it has none.
func (c *Catalog) Versions(eventType string) []Version { return c.types[eventType] }

// Latest returns the newest version of eventType's schema, the one events are written with, or
// an error wrapping ErrUnknownEventType.
func (c *Catalog) Latest(eventType string) (Version, error) {
	vs := c.types[eventType]
	if len(vs) == 0 {
		return Version{}, fmt.Errorf("%w %q in catalog %s (it has %d types)", ErrUnknownEventType, eventType, c.Dir, len(c.types))
	}
	return vs[len(vs)-1], nil
}
