package redis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestTimeFieldConversions(t *testing.T) {
	// Written as Python's isoformat() writes an aware UTC time.
	assert.Equal(t, "2026-11-23T12:00:00.123456+00:00", toPythonISO("2026-11-23T12:00:00.123456789Z"))
	assert.Equal(t, "2026-11-23T11:00:00.000000+00:00", toPythonISO("2026-11-23T12:00:00+01:00"))
	assert.Equal(t, "not a time", toPythonISO("not a time"), "kept as it is, for the consumer to judge")

	// Read back as RFC 3339: aware values pass, naive ones mean UTC, others stay for ParseEvent.
	for in, want := range map[string]string{
		"2026-11-23T12:00:00.123456+00:00": "2026-11-23T12:00:00.123456+00:00",
		"2026-11-23T12:00:00+02:00":        "2026-11-23T12:00:00+02:00",
		"2026-11-23T12:00:00.5Z":           "2026-11-23T12:00:00.5Z",
		"2026-11-23T12:00:00.123456":       "2026-11-23T12:00:00.123456Z",
		"2026-11-23T12:00:00":              "2026-11-23T12:00:00Z",
		"yesterday":                        "yesterday",
	} {
		got := fromISO(in)
		assert.Equal(t, want, got, in)
		if want != "yesterday" {
			_, err := time.Parse(time.RFC3339Nano, got)
			assert.NoError(t, err, "%s reads as RFC 3339", got)
		}
	}
}

func TestDecodeEntryWithoutEventData(t *testing.T) {
	msg, reason := decodeEntry("s", "1-0", map[string]any{"id": "e1", "type": "t"})
	assert.Equal(t, `stream entry has no "event_data" field`, reason)
	assert.Equal(t, "e1", msg.UUID)
	assert.Equal(t, reason, msg.Metadata.Get("eventbus_invalid_reason"))
}
