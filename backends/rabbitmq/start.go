package rabbitmq

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Internal start_from forms for a stream consumer that starts at an offset or a time; only
// consumeArgs reads them.
const (
	startOffsetPrefix = "offset="
	startTimePrefix   = "timestamp="
)

// streamStart returns the subscriber's start for the caller's StartPosition or StartAt (a
// stream queue's offset or timestamp), or startFrom when neither is set. A classic or quorum
// queue has no history to start in, so either is ErrNotSupported there.
func streamStart(cfg *Config, o driver.Options, startFrom string) (string, error) {
	if o.StartPosition == "" && o.StartAt.IsZero() {
		return startFrom, nil
	}
	if cfg.Queue.Type != QueueStream {
		return "", fmt.Errorf("a %s queue cannot start at a time or position: it drops what was acked and a new group's queue holds only what is published after it was declared; set queue.type: stream: %w",
			cfg.Queue.Type, driver.ErrNotSupported)
	}
	if o.StartPosition != "" {
		s := o.StartPosition
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			s = s[i+1:] // queue@offset, as StreamCoordinates writes it
		}
		off, err := strconv.ParseInt(s, 10, 64)
		if err != nil || off < 0 {
			return "", fmt.Errorf("rabbitmq start position %q: want a stream offset, n or queue@n: %w", o.StartPosition, driver.ErrInvalidPosition)
		}
		return startOffsetPrefix + strconv.FormatInt(off, 10), nil
	}
	// AMQP timestamps have whole seconds: round down, so nothing at or after StartAt is missed.
	return startTimePrefix + strconv.FormatInt(o.StartAt.Unix(), 10), nil
}

// streamOffsetArg is the x-stream-offset for startFrom.
func streamOffsetArg(startFrom string) any {
	if s, ok := strings.CutPrefix(startFrom, startOffsetPrefix); ok {
		off, _ := strconv.ParseInt(s, 10, 64)
		return off
	}
	if s, ok := strings.CutPrefix(startFrom, startTimePrefix); ok {
		sec, _ := strconv.ParseInt(s, 10, 64)
		return time.Unix(sec, 0)
	}
	if startFrom == "newest" {
		return "next"
	}
	return "first"
}
