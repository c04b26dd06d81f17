package rabbitmq

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// tableReader builds AMQP header values from fuzz bytes: each value starts with a byte that
// picks one of the types amqp091 decodes a field table into, the way the wire format's type
// tags do, and the bytes after it feed the value. Tables and arrays nest a few levels.
type tableReader struct{ b []byte }

func (r *tableReader) next(n int) []byte {
	n = min(n, len(r.b))
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *tableReader) u64() uint64 {
	var buf [8]byte
	copy(buf[:], r.next(8))
	return binary.LittleEndian.Uint64(buf[:])
}

func (r *tableReader) chunk() []byte {
	n := r.next(1)
	if len(n) == 0 {
		return nil
	}
	return r.next(int(n[0]) % 40)
}

func (r *tableReader) value(depth int) any {
	tag := r.next(1)
	if len(tag) == 0 {
		return nil
	}
	switch tag[0] % 16 {
	case 0:
		return nil
	case 1:
		return string(r.chunk())
	case 2:
		return r.chunk()
	case 3:
		return r.u64()&1 == 1
	case 4:
		return int8(r.u64())
	case 5:
		return int16(r.u64())
	case 6:
		return int32(r.u64())
	case 7:
		return int64(r.u64())
	case 8:
		return uint8(r.u64())
	case 9:
		return math.Float32frombits(uint32(r.u64()))
	case 10:
		return math.Float64frombits(r.u64())
	case 11:
		return time.Unix(int64(r.u64()%(1<<40)), 0)
	case 12:
		v := r.u64()
		return amqp.Decimal{Scale: uint8(v), Value: int32(v >> 8)}
	case 13:
		if depth > 3 {
			return nil
		}
		return r.table(depth + 1)
	case 14:
		if depth > 3 {
			return nil
		}
		n := int(r.u64() % 5)
		arr := make([]any, n)
		for i := range arr {
			arr[i] = r.value(depth + 1)
		}
		return arr
	}
	return uint16(r.u64()) // amqp091 reads 'u' into uint16: not in headerText's list
}

func (r *tableReader) table(depth int) amqp.Table {
	t := amqp.Table{}
	for i := 0; i < 8 && len(r.b) > 0; i++ {
		t[string(r.chunk())] = r.value(depth)
	}
	return t
}

// FuzzUnmarshal feeds unmarshal deliveries whose headers hold every type amqp091 decodes (and
// one it may in a later version), as RabbitMQ's own x-death tables and other producers write
// them, with any message-id and content-type. It must not panic, must give every message a
// UUID, must keep every header, must say which header it could not show as text instead of
// dropping the message, and must read back what marshal writes.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte("\x05ce_id\x01\x05evt-1\x07ce_type\x01\x0ct.created.v1"), "", "application/json", []byte(`{"user_id":42}`), false)
	f.Add([]byte("\x06x-death\x0e\x02\x00\x00\x00\x00\x00\x00\x00\x0d\x05count\x07\x03\x00\x00\x00\x00\x00\x00\x00"), "evt-2", "", []byte("x"), true)
	f.Add([]byte("\x03bin\x02\x02\xff\xfe\x03dec\x0c\x02\x39\x30\x00\x00\x00\x00\x00\x03nan\x0a\x01\x00\x00\x00\x00\x00\xf8\x7f"), "", "", []byte{}, false)
	f.Add([]byte("\x16_watermill_message_uuid\x01\x04wm-1\x04when\x0b\x00\xc4\x41\x67\x00\x00\x00\x00\x01u\x0f\x07"), "", "text/plain", []byte("plain"), true)
	f.Fuzz(func(t *testing.T, headers []byte, messageID, contentType string, body []byte, redelivered bool) {
		r := &tableReader{b: headers}
		d := amqp.Delivery{Headers: r.table(0), MessageId: messageID, ContentType: contentType, Body: body, Redelivered: redelivered}
		msg := unmarshal(d)
		if msg.UUID == "" {
			t.Fatal("a message without a UUID")
		}
		if string(msg.Payload) != string(body) {
			t.Fatalf("payload %q, want %q", msg.Payload, body)
		}
		reason := msg.Metadata.Get(driver.HeaderInvalidReason)
		for k, v := range d.Headers {
			if k == wamqp.DefaultMessageUUIDHeaderKey || k == driver.HeaderInvalidReason {
				continue
			}
			if _, ok := msg.Metadata[k]; !ok {
				t.Fatalf("header %q dropped", k)
			}
			if b, ok := v.([]byte); ok && !utf8.Valid(b) && !strings.Contains(reason, strconv.Quote(k)) {
				t.Fatalf("header %q is not UTF-8 but the reason %q does not say so", k, reason)
			}
			if dec, ok := v.(amqp.Decimal); ok {
				checkDecimal(t, dec, msg.Metadata[k])
			}
		}

		// What marshal writes, unmarshal reads back.
		p := marshal(msg, true)
		back := unmarshal(amqp.Delivery{Headers: p.Headers, MessageId: p.MessageId, ContentType: p.ContentType, Body: p.Body})
		if back.UUID != msg.UUID || string(back.Payload) != string(msg.Payload) {
			t.Fatalf("round trip: uuid %q payload %q, want %q %q", back.UUID, back.Payload, msg.UUID, msg.Payload)
		}
		for k, v := range msg.Metadata {
			if back.Metadata[k] != v {
				t.Fatalf("round trip: metadata %q is %q, want %q", k, back.Metadata[k], v)
			}
		}
	})
}

// checkDecimal checks that text is the decimal's value: its digits with the point Scale places
// from the right.
func checkDecimal(t *testing.T, d amqp.Decimal, text string) {
	t.Helper()
	digits := strings.Replace(strings.TrimPrefix(text, "-"), ".", "", 1)
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || (d.Value < 0) != strings.HasPrefix(text, "-") || n != absInt64(int64(d.Value)) {
		t.Fatalf("decimal %+v shown as %q", d, text)
	}
	if d.Scale > 0 && len(text)-strings.Index(text, ".")-1 != int(d.Scale) {
		t.Fatalf("decimal %+v shown as %q: want %d places", d, text, d.Scale)
	}
}

func absInt64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
