package driver

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// BacklogEndFunc captures the end of what topic holds for the connection's consumer group (as
// configured or overridden, starting where the connection's options say), so that a reader can
// stop once it has seen every message up to it: `eventbus consume --exit-at-end`.
type BacklogEndFunc func(ctx context.Context, topic string) (BacklogEnd, error)

// BacklogEnd is the end of a topic's backlog as it stood when it was captured.
type BacklogEnd interface {
	// Saw records a message the reader was handed (its Position tells where it stood).
	Saw(msg *message.Message)
	// Reached reports whether every message up to the end was seen; true at once when the
	// group had nothing left to read.
	Reached() bool
}

// ConsumeNotesFunc returns what an operator about to consume topic in the connection's
// consumer group should know first, as sentences: that messages published before the group's
// queue existed are not in it, that the broker keeps no history to start from. Nil when there
// is nothing to say. It declares and creates nothing.
type ConsumeNotesFunc func(ctx context.Context, topic string) ([]string, error)
