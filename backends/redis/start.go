package redis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// applyStart turns the caller's StartPosition or StartAt into cfg.StartFrom: the id XGROUP
// CREATE puts a new group at. A group reads the entries after its id, so a position becomes
// the id just before it, and the entry at the position is read too, as Kafka's offsets are.
// A group that exists already keeps its place (as with StartFrom).
func applyStart(cfg *Config, o driver.Options) error {
	switch {
	case o.StartPosition != "":
		id, ok := idBefore(o.StartPosition)
		if !ok {
			return fmt.Errorf("redis start position %q: want a stream id such as 1732363200000-0: %w", o.StartPosition, driver.ErrInvalidPosition)
		}
		cfg.Consumer.StartFrom = id
	case !o.StartAt.IsZero():
		cfg.Consumer.StartFrom = IDBefore(o.StartAt)
	}
	return nil
}

// parseID splits a stream id, "<milliseconds>-<sequence>" or "<milliseconds>", into its
// numbers; ok is false when s is not one.
func parseID(s string) (ms, seq uint64, ok bool) {
	if !streamIDPattern.MatchString(s) {
		return 0, 0, false
	}
	msPart, seqPart, _ := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if seqPart != "" {
		if seq, err = strconv.ParseUint(seqPart, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return ms, seq, true
}

// idBefore returns the largest stream id below id ("1732363200000-5" gives
// "1732363200000-4"; "1732363200000-0" the last possible id of the millisecond before), so
// that a group set there is handed the entry id next; ok is false when id is not a stream id.
func idBefore(id string) (before string, ok bool) {
	ms, seq, ok := parseID(id)
	if !ok {
		return "", false
	}
	switch {
	case seq > 0:
		return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq-1, 10), true
	case ms > 0:
		return strconv.FormatUint(ms-1, 10) + "-" + strconv.FormatUint(math.MaxUint64, 10), true
	}
	return "0", true
}

// idLess compares two stream ids; one that is not an id counts as 0-0.
func idLess(a, b string) bool {
	am, aq, _ := parseID(a)
	bm, bq, _ := parseID(b)
	return am < bm || am == bm && aq < bq
}

// idTime is the time in a stream id: the milliseconds Redis put before the sequence number.
func idTime(id string) (time.Time, bool) {
	msPart, _, _ := strings.Cut(id, "-")
	ms, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
