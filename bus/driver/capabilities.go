package driver

import (
	"fmt"
	"strings"
)

// Capability names one guarantee a backend may or may not give.
type Capability string

const (
	// ConsumerGroups: subscribers sharing a group name split the topic's messages between them,
	// and every group gets every message.
	ConsumerGroups Capability = "consumer-groups"
	// PerKeyOrdering: within a consumer group, messages with the same ordering key are delivered
	// in the order they were published, and a nacked message comes back before the later
	// messages of its key. A pipelining subscriber does not promise this on its own; the
	// ordering middleware restores it on top of one.
	PerKeyOrdering Capability = "per-key-ordering"
	// Persistence: a message the publisher saw acknowledged survives a broker restart.
	Persistence Capability = "persistence"
	// Replay: a consumer can read again messages it (or its group) already acknowledged, from the
	// oldest retained message onwards.
	Replay Capability = "replay"
	// ReplayByTime: replay can start at a point in time.
	ReplayByTime Capability = "replay-by-time"
	// NativeDelay: the broker can hold a message back until a given time.
	NativeDelay Capability = "native-delay"
	// Pipelining: the subscriber hands out further messages before earlier ones are acked (up
	// to a bounded window) and acks each one on its own, committing a position only when every
	// message before it is done. Handlers can then run in parallel without giving up
	// at-least-once; the ordering middleware's concurrency needs it.
	Pipelining Capability = "pipelining"
)

// AllCapabilities lists every capability, in the order they are reported.
var AllCapabilities = []Capability{ConsumerGroups, PerKeyOrdering, Persistence, Replay, ReplayByTime, NativeDelay, Pipelining}

// Capabilities is what a backend, as configured, guarantees. Drivers declare it honestly and the
// conformance suite holds them to it: a capability declared here must pass its test.
type Capabilities struct {
	ConsumerGroups bool
	PerKeyOrdering bool
	Persistence    bool
	Replay         bool
	ReplayByTime   bool
	NativeDelay    bool
	Pipelining     bool

	// MaxMessageBytes is the largest payload plus headers the backend accepts as configured;
	// 0 when unknown.
	MaxMessageBytes int

	// Notes says, per capability, under which conditions it holds or why it does not
	// ("only with a single consumer per group"). Shown by the CLI next to the capability.
	Notes map[Capability]string
}

// Has reports whether the capability is declared.
func (c Capabilities) Has(x Capability) bool {
	switch x {
	case ConsumerGroups:
		return c.ConsumerGroups
	case PerKeyOrdering:
		return c.PerKeyOrdering
	case Persistence:
		return c.Persistence
	case Replay:
		return c.Replay
	case ReplayByTime:
		return c.ReplayByTime
	case NativeDelay:
		return c.NativeDelay
	case Pipelining:
		return c.Pipelining
	}
	return false
}

// String lists the declared capabilities, e.g. "consumer-groups, persistence".
func (c Capabilities) String() string {
	var have []string
	for _, x := range AllCapabilities {
		if c.Has(x) {
			have = append(have, string(x))
		}
	}
	if len(have) == 0 {
		return "none"
	}
	return strings.Join(have, ", ")
}

// Require returns an error wrapping ErrNotSupported, naming the backend, the capability and the
// driver's note on it, for the first capability in want that c lacks.
func (c Capabilities) Require(backend string, want ...Capability) error {
	for _, x := range want {
		if c.Has(x) {
			continue
		}
		msg := fmt.Sprintf("backend %s: %s", backend, x)
		if note := c.Notes[x]; note != "" {
			msg += " (" + note + ")"
		}
		return fmt.Errorf("%s: %w", msg, ErrNotSupported)
	}
	return nil
}
