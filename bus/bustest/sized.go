package bustest

import (
	"bytes"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus"
)

// SizedEvent returns an event whose message is exactly size bytes as measure counts them, for
// tests of a publisher's size limit (publisher.max_message_bytes) at and just over it: its
// data is that many bytes of "x" less the rest of the message. measure nil counts the payload
// plus metadata keys and values; a backend that counts its own framing passes its measure.
// It fails the test when size is too small for the envelope alone.
func SizedEvent(t testing.TB, id string, size int, measure func(*message.Message) int) bus.Event {
	t.Helper()
	if measure == nil {
		measure = messageBytes
	}
	ev := bus.Event{ID: id, Type: "size.v1", Source: "test", Time: time.Unix(1, 0).UTC()}
	msg, err := bus.NewMessage(ev, bus.JSON)
	if err != nil {
		t.Fatalf("build the event: %v", err)
	}
	n := size - measure(msg)
	if n <= 0 {
		t.Fatalf("%d bytes do not hold the envelope of event %s (%d bytes)", size, id, measure(msg))
	}
	ev.Data = bytes.Repeat([]byte("x"), n)
	if msg, err = bus.NewMessage(ev, bus.JSON); err != nil {
		t.Fatalf("build the event: %v", err)
	}
	if got := measure(msg); got != size {
		t.Fatalf("event %s measures %d bytes, want %d", id, got, size)
	}
	return ev
}

// messageBytes is the payload plus metadata keys and values.
func messageBytes(m *message.Message) int {
	n := len(m.Payload)
	for k, v := range m.Metadata {
		n += len(k) + len(v)
	}
	return n
}
