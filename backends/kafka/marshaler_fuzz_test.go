package kafka

import (
	"strings"
	"testing"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// fuzzHeaders reads "key=value" lines as record headers; a line "\x00" is a nil header, which
// Sarama can hand over for a record whose header list has holes.
func fuzzHeaders(s string) []*sarama.RecordHeader {
	var hs []*sarama.RecordHeader
	for _, line := range strings.Split(s, "\n") {
		if line == "\x00" {
			hs = append(hs, nil)
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		hs = append(hs, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	return hs
}

// FuzzUnmarshal feeds the consumer side records as any producer could write them: any headers
// (duplicates, nil, empty keys, bytes that are not UTF-8), any key and value. Unmarshal must
// not panic, must give every record a UUID, and must keep every header and the key; and a
// message the marshaler wrote must come back as it was.
func FuzzUnmarshal(f *testing.F) {
	f.Add("ce_id=evt-1\nce_type=org.openedx.learning.course.enrollment.created.v1\nce_source=openedx/lms/web\nce_specversion=1.0\nce_time=2026-11-23T12:00:00Z\ncontent-type=application/json",
		[]byte("user-42"), []byte(`{"user":{"id":42}}`), int32(0), int64(17))
	f.Add("_watermill_message_uuid=3f1c\nce_id=evt-2\ntraceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", []byte(nil), []byte("x"), int32(3), int64(0))
	f.Add("\x00\n=\nce_id=\nce_id=second\nce_partitionkey=from-header", []byte("from-record"), []byte{0xff, 0xfe}, int32(-1), int64(-1))
	f.Add("eventbus_poison_reason=exhausted\neventbus_poison_attempts=5\nk=\xff\xfe", []byte{0xc3, 0x28}, []byte(""), int32(2147483647), int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, headers string, key, value []byte, partition int32, offset int64) {
		rec := &sarama.ConsumerMessage{Topic: "enrollments", Partition: partition, Offset: offset, Key: key, Value: value, Headers: fuzzHeaders(headers)}
		msg, err := marshaler{}.Unmarshal(rec)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if msg.UUID == "" {
			t.Fatal("a message without a UUID")
		}
		if string(msg.Payload) != string(value) {
			t.Fatalf("payload %q, want %q", msg.Payload, value)
		}
		if len(key) > 0 && msg.Metadata.Get(driver.HeaderKey) != string(key) {
			t.Fatalf("key %q, want the record's %q", msg.Metadata.Get(driver.HeaderKey), key)
		}
		last := map[string]string{}
		for _, h := range rec.Headers {
			if h != nil && string(h.Key) != wkafka.UUIDHeaderKey {
				last[string(h.Key)] = string(h.Value)
			}
		}
		for k, v := range last {
			if k == driver.HeaderKey && len(key) > 0 {
				continue // the record key wins
			}
			if got := msg.Metadata.Get(k); got != v {
				t.Fatalf("header %q is %q in the message, %q in the record", k, got, v)
			}
		}

		// What the marshaler writes, it reads back.
		if msg.Metadata.Get(wkafka.UUIDHeaderKey) != "" {
			return
		}
		out, err := marshaler{}.Marshal("enrollments", msg)
		if err != nil {
			t.Fatalf("Marshal of an unmarshalled message: %v", err)
		}
		back, err := marshaler{}.Unmarshal(consumed(out, partition, offset))
		if err != nil {
			t.Fatal(err)
		}
		if back.UUID != msg.UUID || string(back.Payload) != string(msg.Payload) {
			t.Fatalf("round trip: uuid %q payload %q, want %q %q", back.UUID, back.Payload, msg.UUID, msg.Payload)
		}
		for k, v := range msg.Metadata {
			if back.Metadata.Get(k) != v {
				t.Fatalf("round trip: metadata %q is %q, want %q", k, back.Metadata.Get(k), v)
			}
		}
	})
}

// consumed turns a produced record into the record a consumer would read.
func consumed(p *sarama.ProducerMessage, partition int32, offset int64) *sarama.ConsumerMessage {
	rec := &sarama.ConsumerMessage{Topic: p.Topic, Partition: partition, Offset: offset}
	if p.Key != nil {
		rec.Key, _ = p.Key.Encode()
	}
	if p.Value != nil {
		rec.Value, _ = p.Value.Encode()
	}
	for i := range p.Headers {
		rec.Headers = append(rec.Headers, &p.Headers[i])
	}
	return rec
}

// FuzzRecordBytesBound: the allocation-free bound the publisher checks first is never below
// the record's size as Sarama measures it, for either record version, so no record over the
// limit passes the check unmeasured.
func FuzzRecordBytesBound(f *testing.F) {
	f.Add("ce_id=evt-1\nce_type=t.v1\nce_source=s\nce_partitionkey=user-42", "evt-1", []byte(`{"n":1}`))
	f.Add("", "3f1c", []byte(nil))
	f.Add("ce_partitionkey=\nk=", "", []byte("x"))
	f.Fuzz(func(t *testing.T, metadata, uuid string, payload []byte) {
		msg := message.NewMessage(uuid, payload)
		for _, line := range strings.Split(metadata, "\n") {
			k, v, _ := strings.Cut(line, "=")
			msg.Metadata.Set(k, v)
		}
		if msg.Metadata.Get(wkafka.UUIDHeaderKey) != "" {
			return // refused by the marshaler, whatever its size
		}
		for _, version := range []int{1, 2} {
			size, err := recordBytes("enrollments", msg, version)
			if err != nil {
				t.Fatal(err)
			}
			if bound := recordBytesBound(msg); bound < size {
				t.Fatalf("version %d: bound %d below the record's %d bytes", version, bound, size)
			}
		}
	})
}

// BenchmarkSizeCheck: measuring a typical event's record (what the publisher did for every
// message) against the bound it now checks first.
func BenchmarkSizeCheck(b *testing.B) {
	msg := message.NewMessage("evt-1", []byte(`{"user":{"id":42,"username":"learner"},"course":{"course_key":"course-v1:edX+DemoX+Demo_Course"}}`))
	for k, v := range map[string]string{"ce_id": "evt-1", "ce_type": "org.openedx.learning.course.enrollment.created.v1", "ce_source": "openedx/lms/web",
		"ce_specversion": "1.0", "ce_time": "2026-11-23T12:00:00Z", "content-type": "application/json", "ce_partitionkey": "user-42"} {
		msg.Metadata.Set(k, v)
	}
	b.Run("record", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = recordBytes("enrollments", msg, 2)
		}
	})
	b.Run("bound", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = recordBytesBound(msg)
		}
	})
}
