package bustest

import (
	"fmt"
	"strings"

	"github.com/eventbus-go/eventbus/bus"
)

// Matrix cells: what a run showed about one capability of one backend configuration.
const (
	// CellYes: declared, and every check of it passed.
	CellYes = "yes"
	// CellNo: not declared, and bus.Require refused it.
	CellNo = "no"
	// CellUnchecked: declared, but its check needs what the harness lacks (a broker restart).
	CellUnchecked = "declared, not checked"
	// CellFails: declared, and a check of it failed.
	CellFails = "**FAILS**"
)

// Matrix renders results of one or more harnesses as a Markdown table: a row per capability
// (bus.AllCapabilities), a column per harness in the order the results name them. A
// capability without a result in a column (its check was not run) shows "?".
func Matrix(results []Result) string {
	var columns []string
	cells := map[string]map[bus.Capability]string{}
	for _, r := range results {
		if cells[r.Backend] == nil {
			columns = append(columns, r.Backend)
			cells[r.Backend] = map[bus.Capability]string{}
		}
		if r.Capability == "" {
			continue
		}
		cell := cellOf(r)
		if prev, ok := cells[r.Backend][r.Capability]; !ok || rank(cell) > rank(prev) {
			cells[r.Backend][r.Capability] = cell
		}
	}
	var b strings.Builder
	b.WriteString("| capability |")
	for _, c := range columns {
		fmt.Fprintf(&b, " %s |", c)
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(columns)))
	b.WriteString("\n")
	for _, capability := range bus.AllCapabilities {
		fmt.Fprintf(&b, "| %s |", capability)
		for _, c := range columns {
			cell, ok := cells[c][capability]
			if !ok {
				cell = "?"
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func cellOf(r Result) string {
	switch {
	case r.Outcome == Fail:
		return CellFails
	case !r.Declared:
		return CellNo
	case r.Outcome == Skip:
		return CellUnchecked
	}
	return CellYes
}

// rank orders cells so that a capability with several checks shows the worst outcome.
func rank(cell string) int {
	switch cell {
	case CellFails:
		return 3
	case CellUnchecked:
		return 2
	case CellNo:
		return 1
	}
	return 0
}
