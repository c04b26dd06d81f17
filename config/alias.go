package config

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// maxAliasNodes bounds how many nodes a file may reach through aliases, all aliases together:
// plenty for sharing a few blocks with &anchor and *alias, and far below what a "billion
// laughs" file asks for (nine nested levels of ten aliases make 10^9 nodes from 400 bytes).
// A larger file is allowed as many nodes as it has bytes.
const maxAliasNodes = 10_000

// aliasWalk walks a document's tree the way the decoders do, following aliases, and stops at
// the first cyclic alias or once the nodes reached through aliases pass the limit.
type aliasWalk struct {
	file     string
	limit    int
	expanded int                 // nodes visited inside an alias's target so far
	open     map[*yaml.Node]bool // nodes whose subtree the walk is in: an alias to one is a cycle
}

// checkAliases reports a cyclic alias, or an expansion beyond limit nodes, as an *Error at the
// alias's line naming the key that holds it.
func checkAliases(file string, root *yaml.Node, limit int) error {
	w := &aliasWalk{file: file, limit: limit, open: map[*yaml.Node]bool{}}
	return w.walk(root, "", nil, "")
}

// walk visits n at path. entry is the outermost alias being expanded (nil outside any), and
// entryPath the key that holds it: an expansion that grows too large is reported there, where
// the file has the alias, rather than deep inside its copy.
func (w *aliasWalk) walk(n *yaml.Node, path string, entry *yaml.Node, entryPath string) error {
	if entry != nil {
		w.expanded++
		if w.expanded > w.limit {
			return &Error{File: w.file, Line: entry.Line, Path: entryPath, Msg: fmt.Sprintf("aliases expand to more than %d values: nested aliases are not allowed to grow the file this much", w.limit)}
		}
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil
		}
		if w.open[n.Alias] {
			return &Error{File: w.file, Line: n.Line, Path: path, Msg: fmt.Sprintf("alias *%s refers to a value that contains it: cyclic aliases are not allowed", n.Value)}
		}
		if entry == nil {
			entry, entryPath = n, path
		}
		return w.walk(n.Alias, path, entry, entryPath)
	}
	if len(n.Content) == 0 {
		return nil
	}
	w.open[n] = true
	defer delete(w.open, n)
	for i, c := range n.Content {
		p := path
		switch n.Kind {
		case yaml.MappingNode:
			if i%2 == 0 {
				p = joinPath(path, c.Value) // a key: walked too, since a key may be an alias
			} else {
				p = joinPath(path, n.Content[i-1].Value)
			}
		case yaml.SequenceNode:
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		if err := w.walk(c, p, entry, entryPath); err != nil {
			return err
		}
	}
	return nil
}
