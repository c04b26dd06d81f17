package redis

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRewindIDBeforeEntry: replaying --to an entry sets the group just before it, so that the
// entry itself is handed next.
func TestRewindIDBeforeEntry(t *testing.T) {
	for in, want := range map[string]string{
		"1732363200000-5": "1732363200000-4",
		"1732363200000-0": "1732363199999-18446744073709551615",
		"1732363200000":   "1732363199999-18446744073709551615",
		"0-1":             "0-0",
		"0-0":             "0",
	} {
		got, ok := idBefore(in)
		assert.True(t, ok, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "abc", "1-2-3", "-1", "18446744073709551616-0"} {
		_, ok := idBefore(bad)
		assert.False(t, ok, "not a stream id: %q", bad)
	}
}
