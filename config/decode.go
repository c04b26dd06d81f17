package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder decodes a YAML node onto a Go value strictly: an unknown key, a duplicate key or a value
// of the wrong type is reported with its line and key path, and decoding goes on so that one run
// reports every problem. yaml.v3's own KnownFields works only on a whole stream and its messages
// carry no key path, hence this walker.
type decoder struct {
	file     string
	lookup   func(string) (string, bool)
	readFile func(string) ([]byte, error)
	errs     []*Error
	bad      map[string]bool // paths that already have an error; validation skips them
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
	if d.bad == nil {
		d.bad = map[string]bool{}
	}
	d.bad[path] = true
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	durationType    = reflect.TypeOf(time.Duration(0))
)

// isLeaf reports whether values of t are decoded by yaml.v3 in one piece.
func isLeaf(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(unmarshalerType) || t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		return false
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return isLeaf(t.Elem())
	}
	return true
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode {
		d.expandScalar(n, path)
	}
	t := v.Type()
	if isLeaf(t) {
		d.decodeLeaf(n, v, path)
		return
	}
	if isNull(n) {
		return // keep the defaults
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := reflect.New(t.Key()).Elem()
			if err := k.Decode(key.Addr().Interface()); err != nil {
				d.fail(k, joinPath(path, k.Value), "bad key: %s", yamlMessage(err))
				continue
			}
			elem := reflect.New(t.Elem()).Elem()
			d.decode(val, elem, joinPath(path, k.Value))
			m.SetMapIndex(key, elem)
		}
		v.Set(m)
	default:
		d.fail(n, path, "cannot decode into %s", t)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping of keys, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if seen[k.Value] {
			d.fail(k, p, "key given twice")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			if to := renamedTo(v, k.Value); to != "" {
				d.fail(k, p, "renamed to %s", to)
				continue
			}
			d.fail(k, p, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		d.decode(val, v.FieldByIndex(idx), p)
	}
}

func (d *decoder) decodeLeaf(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) && n.Kind == yaml.ScalarNode {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		d.expandAll(n, path)
	}
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		d.fail(n, path, "%s", leafMessage(n, v.Type(), err))
		return
	}
	v.Set(tmp.Elem())
}

// expandScalar replaces ${...} references in a scalar value. An expanded value is re-resolved as
// if it had been written plainly, so "port: ${PORT}" decodes into an int.
func (d *decoder) expandScalar(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "$") {
		return
	}
	s, err := expand(n.Value, d.lookup, d.readFile)
	if err != nil {
		d.fail(n, path, "%s", err)
		n.Value, n.Tag, n.Style = "", "!!null", 0
		return
	}
	// Resolve the result as a plain scalar ("6379" becomes an int, "true" a bool); only a value that
	// would resolve to null stays a string, so "${PASSWORD:-}" is an empty string, not "absent".
	n.Value, n.Tag, n.Style = s, "", 0
	switch s {
	case "", "~", "null", "Null", "NULL":
		n.Style = yaml.DoubleQuotedStyle
	}
}

func (d *decoder) expandAll(n *yaml.Node, path string) {
	for i, c := range n.Content {
		switch c.Kind {
		case yaml.ScalarNode:
			if n.Kind == yaml.MappingNode && i%2 == 0 {
				continue // keys are never expanded
			}
			d.expandScalar(c, path)
		case yaml.SequenceNode, yaml.MappingNode:
			d.expandAll(c, path)
		}
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || (n.Style == 0 && (n.Value == "" || n.Value == "~" || n.Value == "null")))
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// leafMessage turns yaml.v3's "line 3: cannot unmarshal !!str `abc` into time.Duration" into a
// message that says what to write instead.
func leafMessage(n *yaml.Node, t reflect.Type, err error) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	got := describe(n)
	switch {
	case t == durationType:
		return fmt.Sprintf("%s is not a duration: use Go syntax such as 500ms, 30s or 5m", got)
	case t.Kind() == reflect.Bool:
		return fmt.Sprintf("%s is not a boolean: use true or false", got)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return fmt.Sprintf("%s is not a whole number", got)
	case t.Kind() == reflect.Slice && n.Kind != yaml.SequenceNode:
		return fmt.Sprintf("expected a list, got %s", got)
	}
	return yamlMessage(err)
}

func yamlMessage(err error) string {
	msg := err.Error()
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if _, rest, ok := strings.Cut(msg, ": "); ok {
			msg = rest
		}
	}
	return msg
}

// yamlFields maps each YAML key of struct type t to its field index, following yaml tags.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

// suggest names the known keys, closest first, so a typo points at its fix.
// Renamer is implemented by a config struct some of whose keys were renamed or moved: an old
// key in a file is reported as "renamed to NEW" at its line instead of "unknown key".
type Renamer interface {
	// RenamedKeys maps an old key of this struct to the new key's path, relative to the same
	// struct ("consumer.start_from") or from the file's root when it moved elsewhere.
	RenamedKeys() map[string]string
}

func renamedTo(v reflect.Value, key string) string {
	if !v.CanAddr() {
		return ""
	}
	if r, ok := v.Addr().Interface().(Renamer); ok {
		return r.RenamedKeys()[key]
	}
	return ""
}

// Closest returns the name in names nearest to s when it is a likely typo (at most two edits
// away), else "".
func Closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD || (d == bestD && n < best) {
			best, bestD = n, d
		}
	}
	return best
}

func suggest(key string, fields map[string][]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := editDistance(key, names[i]), editDistance(key, names[j])
		if di != dj {
			return di < dj
		}
		return names[i] < names[j]
	})
	if len(names) == 0 {
		return ""
	}
	if editDistance(key, names[0]) <= 2 {
		return fmt.Sprintf(" (did you mean %q?)", names[0])
	}
	sort.Strings(names)
	return fmt.Sprintf(" (known keys: %s)", strings.Join(names, ", "))
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
