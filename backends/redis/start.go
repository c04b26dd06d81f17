package redis

import (
	"fmt"
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
		id, err := idBeforeID(o.StartPosition)
		if err != nil {
			return err
		}
		cfg.Consumer.StartFrom = id
	case !o.StartAt.IsZero():
		cfg.Consumer.StartFrom = IDBefore(o.StartAt)
	}
	return nil
}

// idBeforeID returns the stream id just before id ("1732363200000-5" gives
// "1732363200000-4"; "1732363200000-0" the last possible id of the millisecond before).
func idBeforeID(id string) (string, error) {
	bad := fmt.Errorf("redis start position %q: want a stream id such as 1732363200000-0: %w", id, driver.ErrInvalidPosition)
	if !streamIDPattern.MatchString(id) {
		return "", bad
	}
	msPart, seqPart, _ := strings.Cut(id, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return "", bad
	}
	var seq uint64
	if seqPart != "" {
		if seq, err = strconv.ParseUint(seqPart, 10, 64); err != nil {
			return "", bad
		}
	}
	switch {
	case seq > 0:
		return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq-1, 10), nil
	case ms > 0:
		return strconv.FormatUint(ms-1, 10) + "-18446744073709551615", nil
	}
	return "0", nil
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
