package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// DefaultBackend is the backend used when the file names none: Kafka, the Open edX choice.
const DefaultBackend = "kafka"

// DefaultFile is the file the CLI reads when --config is not given.
const DefaultFile = "eventbus.yaml"

var (
	sectionsMu sync.RWMutex
	// sections are the top-level keys a file may hold besides "backend": "router" (the router
	// and its middleware) and one per registered backend, named after it.
	sections = map[string]bool{"router": true}
)

// RegisterSection makes name a known top-level section. A driver's registration
// (driver.Register) calls it with the backend's name, so this package lists no backend.
func RegisterSection(name string) {
	sectionsMu.Lock()
	defer sectionsMu.Unlock()
	sections[name] = true
}

// Sections returns the known top-level sections besides "backend", sorted.
func Sections() []string {
	sectionsMu.RLock()
	defer sectionsMu.RUnlock()
	names := make([]string, 0, len(sections))
	for n := range sections {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Config is a parsed configuration file. The backend's section and the router section are kept
// as YAML and decoded by their owners (the backend driver, the router) with Section.Decode, so
// this package knows the file's shape but none of the brokers' clients.
type Config struct {
	// File is the name the configuration was loaded from; "" when it is built in.
	File string
	// Backend names the registered driver to use. Default: "kafka".
	Backend string

	root     *yaml.Node // the document's top-level mapping; nil for the built-in default
	lookup   func(string) (string, bool)
	readFile func(string) ([]byte, error)
}

// Default returns the built-in configuration: Kafka with every default, as if the file were empty.
func Default() *Config {
	return &Config{Backend: DefaultBackend, lookup: osLookupEnv, readFile: osReadFile}
}

// Load reads and parses the file at path. A missing file is an error; see LoadOrDefault.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// LoadOrDefault is Load, except that a missing file yields Default(). The CLI uses it for its
// default ./eventbus.yaml so that it runs with no file at all.
func LoadOrDefault(path string) (*Config, error) {
	c, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	return c, err
}

// Parse parses a configuration document; name is used in error messages. It checks the
// top-level keys and the backend name's form; the sections are checked when decoded.
func Parse(name string, data []byte) (*Config, error) {
	c := Default()
	c.File = name
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil // an empty file is the default configuration
		}
		return nil, &Error{File: name, Line: yamlErrorLine(err), Msg: yamlMessage(err)}
	}
	// yaml.v3 reads one document per Decode: a second one would be dropped without a word.
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, &Error{File: name, Line: next.Line, Msg: "a second YAML document starts here (---): the file must hold one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, &Error{File: name, Line: yamlErrorLine(err), Msg: yamlMessage(err)}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return c, nil
	}
	root := doc.Content[0]
	// The decoders below follow aliases by recursion: a cycle would overflow the stack, and
	// nested aliases would expand exponentially. Check both once, before anything follows them.
	if err := checkAliases(name, root, max(maxAliasNodes, len(data))); err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Msg: "the file must be a mapping of sections (backend:, " + strings.Join(Sections(), ":, ") + ":)"}
	}
	c.root = root

	d := c.decoder()
	known := map[string][]int{"backend": nil}
	for _, s := range Sections() {
		known[s] = nil
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch {
		case seen[k.Value]:
			d.fail(k, k.Value, "key given twice")
		case k.Value == "backend":
			d.expandScalar(v, "backend")
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				d.fail(v, "backend", "must name a backend, one of %s", strings.Join(Sections(), ", "))
				break
			}
			c.Backend = strings.TrimSpace(v.Value)
		default:
			if _, ok := known[k.Value]; !ok {
				d.fail(k, k.Value, "unknown key%s", suggest(k.Value, known))
			}
		}
		seen[k.Value] = true
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Section returns the named top-level section ("kafka", "router", ...). It exists whether or not
// the file has it; an absent section decodes to the defaults.
func (c *Config) Section(name string) Section {
	return Section{cfg: c, name: name, node: c.child(name)}
}

// ErrorAt returns an *Error for the value at the dotted path, located on the line where the file
// has it (or its nearest parent), for problems found outside a section's Validate.
func (c *Config) ErrorAt(path, format string, args ...any) error {
	return &Error{File: c.File, Line: c.lineOf(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// WrapAt is ErrorAt for a problem that is an error already: the message is err's, and
// errors.Is sees err's chain as well as ErrInvalid.
func (c *Config) WrapAt(path string, err error) error {
	return &Error{File: c.File, Line: c.lineOf(path), Path: path, Msg: err.Error(), Err: err}
}

func (c *Config) child(name string) *yaml.Node {
	if c.root == nil {
		return nil
	}
	for i := 0; i+1 < len(c.root.Content); i += 2 {
		if c.root.Content[i].Value == name {
			return c.root.Content[i+1]
		}
	}
	return nil
}

// lineOf finds the line of the deepest key on path that the file has; 0 if not even the first.
func (c *Config) lineOf(path string) int {
	n, line := c.root, 0
	for _, part := range splitPath(path) {
		if n == nil {
			break
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			var idx int
			if _, err := fmt.Sscanf(part, "[%d]", &idx); err == nil && idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
				line = next.Line
			}
		}
		n = next
	}
	return line
}

func splitPath(path string) []string {
	var parts []string
	for _, p := range strings.Split(path, ".") {
		for {
			i := strings.IndexByte(p, '[')
			if i <= 0 {
				break
			}
			parts = append(parts, p[:i])
			p = p[i:]
			j := strings.IndexByte(p, ']')
			if j < 0 {
				break
			}
			parts = append(parts, p[:j+1])
			p = p[j+1:]
		}
		if p != "" {
			parts = append(parts, p)
		}
	}
	return parts
}

func (c *Config) decoder() *decoder {
	return &decoder{file: c.File, lookup: c.lookup, readFile: c.readFile}
}

// WithEnv returns a copy of c that resolves ${VAR} with lookup instead of the process
// environment; tests use it.
func (c *Config) WithEnv(lookup func(string) (string, bool)) *Config {
	cp := *c
	cp.lookup = lookup
	return &cp
}

// Section is one top-level section of the file, decoded by its owner.
type Section struct {
	cfg  *Config
	name string
	node *yaml.Node
}

// Name is the section's key, e.g. "kafka".
func (s Section) Name() string { return s.name }

// Present reports whether the file has this section.
func (s Section) Present() bool { return s.node != nil }

// Decode decodes the section onto v, a pointer to a struct that already holds the defaults (a
// key absent from the file keeps its default). Decoding is strict: an unknown key, a duplicate
// key, a value of the wrong type and an unset ${VAR} are errors. If v has a Validate() error
// method, it runs afterwards and its *FieldError paths are located in the file. Every problem is
// reported, each as an *Error wrapping ErrInvalid, joined into one error.
func (s Section) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: Decode of section %q needs a non-nil pointer, got %T", s.name, v)
	}
	d := s.cfg.decoder()
	if s.node != nil {
		d.decode(deepCopy(s.node), rv.Elem(), s.name)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		for _, fe := range fieldErrors(val.Validate()) {
			path := joinPath(s.name, fe.Path)
			if d.bad[path] {
				continue // already reported while decoding; the default left in its place is moot
			}
			d.errs = append(d.errs, &Error{File: s.cfg.File, Line: s.cfg.lineOf(path), Path: path, Msg: fe.Msg})
		}
	}
	return d.err()
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// deepCopy copies a node tree so that expanding ${VAR} in place never changes the parsed file.
// It follows aliases, which is safe only because Parse has refused cyclic ones and bounded what
// they expand to (checkAliases).
func deepCopy(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	cp := *n
	if n.Alias != nil {
		cp.Alias = deepCopy(n.Alias)
	}
	if len(n.Content) > 0 {
		cp.Content = make([]*yaml.Node, len(n.Content))
		for i, c := range n.Content {
			cp.Content[i] = deepCopy(c)
		}
	}
	return &cp
}

// yamlErrorLine extracts the line from a yaml.v3 syntax error ("yaml: line 3: ...").
func yamlErrorLine(err error) int {
	var line int
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if _, e := fmt.Sscanf(msg, "line %d:", &line); e != nil {
		return 0
	}
	// yaml.v3 counts lines from 0 in its parser's errors ("did not find expected key") and from 1
	// in its scanner's; move the former to the line people see in their editor.
	if strings.Contains(msg, "did not find expected") {
		line++
	}
	return line
}
