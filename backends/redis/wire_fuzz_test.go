package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// fuzzFields reads "field=value" lines as a stream entry's fields; a value starting with "b:"
// arrives as []byte and one that is "<nil>" as nil, the other forms go-redis can hand over.
func fuzzFields(s string) map[string]any {
	values := map[string]any{}
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch {
		case v == "<nil>":
			values[k] = nil
		case strings.HasPrefix(v, "b:"):
			values[k] = []byte(v[2:])
		default:
			values[k] = v
		}
	}
	return values
}

// FuzzDecodeEntry feeds decodeEntry stream entries as any producer could write them (Open edX's
// Python event bus, redis-cli, a buggy service). It must not panic, must give every entry a
// UUID, must say what is wrong with an entry that has no id or no event_data instead of
// dropping it, and must read back what the marshaller writes.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("id=evt-1\ntype=org.openedx.learning.course.enrollment.created.v1\nsource=openedx/lms/web\ntime=2026-11-23T12:00:00.123456+00:00\nminorversion=0\nsourcehost=lms-7f9\nsourcelib=0.1.2\nevent_data=b:{\"user\":{\"id\":42}}", "1732363200000-0")
	f.Add("id=evt-2\nevent_data=\nspecversion=1.0\ndatacontenttype=application/json\npartitionkey=user-42\ntraceparent=00-abc-01\ntime=2026-11-23T12:00:00", "1732363200000-1")
	f.Add("type=no-id\nevent_data=<nil>", "0-1")
	f.Add("_watermill_message_uuid=u-1\nid=\n=\ntime=2026-11-23T\neventbus_invalid_reason=forged", "")
	f.Add("time=2026-11-23T12:00:00.5\xff\nid=\xfe\nevent_data=b:\xff", "9-9")
	f.Fuzz(func(t *testing.T, fields, entryID string) {
		values := fuzzFields(fields)
		msg, reason := decodeEntry("enrollments", entryID, values)
		if msg == nil || msg.UUID == "" {
			t.Fatal("an entry without a message or UUID")
		}
		id, hasID := values[FieldID]
		_, hasData := values[FieldData]
		good := hasID && fieldString(id) != "" && hasData
		if good != (reason == "") {
			t.Fatalf("reason %q for an entry with id %v, event_data %v", reason, hasID, hasData)
		}
		if reason != "" {
			if !strings.Contains(reason, "stream entry has no") || msg.Metadata.Get(driver.HeaderInvalidReason) != reason {
				t.Fatalf("unclear or unrecorded reason %q", reason)
			}
			return
		}

		// What the marshaller writes, decodeEntry reads back.
		out, err := marshaller{}.Marshal("enrollments", msg)
		if err != nil {
			if !errors.Is(err, driver.ErrInvalidEvent) || err.Error() == "" {
				t.Fatalf("Marshal refused without ErrInvalidEvent: %v", err)
			}
			return
		}
		back, reason := decodeEntry("enrollments", entryID, out)
		if reason != "" {
			t.Fatalf("a marshalled message reads back as invalid: %s", reason)
		}
		sameMessage(t, msg, back)
	})
}

func sameMessage(t *testing.T, want, got *message.Message) {
	t.Helper()
	if got.UUID != want.UUID || string(got.Payload) != string(want.Payload) {
		t.Fatalf("round trip: uuid %q payload %q, want %q %q", got.UUID, got.Payload, want.UUID, want.Payload)
	}
	for k, v := range want.Metadata {
		g := got.Metadata.Get(k)
		if k == driver.HeaderTime {
			// Written as Python's isoformat() writes it: the same instant, maybe another form.
			wt, err1 := time.Parse(time.RFC3339Nano, v)
			gt, err2 := time.Parse(time.RFC3339Nano, g)
			if err1 == nil && err2 == nil && wt.Truncate(time.Microsecond).Equal(gt) {
				continue
			}
		}
		if g != v {
			t.Fatalf("round trip: metadata %q is %q, want %q", k, g, v)
		}
	}
}
