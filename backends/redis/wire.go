package redis

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Stream entry fields. The first eight are the layout Open edX's Redis event bus
// (edx-event-bus-redis) writes and reads; the rest carry the other envelope attributes under
// their CloudEvents attribute names. Any other field is user metadata, under its own key.
const (
	FieldID           = "id"           // event id (ce_id); the message UUID
	FieldType         = "type"         // ce_type
	FieldSource       = "source"       // ce_source
	FieldTime         = "time"         // ce_time, ISO 8601 as Python's isoformat() writes it
	FieldMinorVersion = "minorversion" // Open edX metadata, carried as metadata "minorversion"
	FieldSourceHost   = "sourcehost"   // Open edX metadata, carried as metadata "sourcehost"
	FieldSourceLib    = "sourcelib"    // Open edX metadata, carried as metadata "sourcelib"
	FieldData         = "event_data"   // the payload bytes, untouched

	FieldSpecVersion     = "specversion"     // ce_specversion
	FieldDataContentType = "datacontenttype" // content-type
	FieldSubject         = "subject"         // ce_subject
	FieldPartitionKey    = "partitionkey"    // the ordering key, ce_partitionkey

	// FieldWatermillUUID carries the Watermill message UUID, written only when it differs from
	// the event id (messages built by hand rather than by driver.Publish).
	FieldWatermillUUID = redisstream.UUIDHeaderKey
)

// envelopeFields maps bus metadata keys to the stream fields that carry them.
var envelopeFields = map[string]string{
	driver.HeaderType:        FieldType,
	driver.HeaderSource:      FieldSource,
	driver.HeaderTime:        FieldTime,
	driver.HeaderSpecVersion: FieldSpecVersion,
	driver.HeaderContentType: FieldDataContentType,
	driver.HeaderSubject:     FieldSubject,
	driver.HeaderKey:         FieldPartitionKey,
}

// reservedFields are stream fields that user metadata may not use.
var reservedFields = func() map[string]bool {
	r := map[string]bool{FieldID: true, FieldData: true, FieldWatermillUUID: true}
	for _, f := range envelopeFields {
		r[f] = true
	}
	return r
}()

// metadataOfField is envelopeFields inverted.
var metadataOfField = func() map[string]string {
	m := make(map[string]string, len(envelopeFields))
	for k, f := range envelopeFields {
		m[f] = k
	}
	return m
}()

// ReservedFields lists, sorted, the stream fields that message metadata keys may not take.
func ReservedFields() []string {
	out := make([]string, 0, len(reservedFields))
	for f := range reservedFields {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// pythonISOFormat is how Python's datetime.isoformat() writes an aware UTC time with
// microseconds, which is what edx-event-bus-redis writes and what datetime.fromisoformat
// reads on every Python version (before 3.11 it rejects a "Z" suffix).
const pythonISOFormat = "2006-01-02T15:04:05.000000-07:00"

// marshaller writes one stream field per attribute; it is the watermill-redisstream
// publisher's Marshaller.
type marshaller struct{}

var _ redisstream.Marshaller = marshaller{}

// Marshal returns the entry's fields. A metadata key that is a reserved field is refused, naming
// the key, since it would overwrite an attribute.
func (marshaller) Marshal(topic string, msg *message.Message) (map[string]any, error) {
	id := msg.Metadata.Get(driver.HeaderID)
	if id == "" {
		id = msg.UUID
	}
	if id == "" {
		return nil, fmt.Errorf("message to %s has neither a UUID nor metadata %s", topic, driver.HeaderID)
	}
	values := make(map[string]any, len(msg.Metadata)+2)
	values[FieldID] = id
	values[FieldData] = []byte(msg.Payload)
	if msg.UUID != "" && msg.UUID != id {
		values[FieldWatermillUUID] = msg.UUID
	}
	for k, v := range msg.Metadata {
		if k == driver.HeaderID {
			continue
		}
		if f, ok := envelopeFields[k]; ok {
			if k == driver.HeaderTime {
				v = toPythonISO(v)
			}
			values[f] = v
			continue
		}
		if reservedFields[k] {
			return nil, fmt.Errorf("message %s to %s: metadata key %q is a reserved stream field (reserved: %s): %w",
				msg.UUID, topic, k, strings.Join(ReservedFields(), ", "), driver.ErrInvalidEvent)
		}
		if k == "" {
			return nil, fmt.Errorf("message %s to %s: empty metadata key: %w", msg.UUID, topic, driver.ErrInvalidEvent)
		}
		values[k] = v
	}
	return values, nil
}

// toPythonISO rewrites an RFC 3339 time as Python's isoformat() would; other values pass as they
// are, so nothing is lost.
func toPythonISO(v string) string {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return v
	}
	return t.UTC().Format(pythonISOFormat)
}

// fromISO reads the time field back as RFC 3339. Python's isoformat() of an aware time is
// already RFC 3339 and passes as it is; a naive one (no offset) means UTC and gets a "Z".
// Anything else is returned as is, for driver.ParseEvent to report.
func fromISO(v string) string {
	if len(v) < len("2006-01-02T15:04:05") || v[10] != 'T' {
		return v
	}
	rest := v[19:]
	if rest == "" || rest[0] == '.' && !strings.ContainsAny(rest, "Z+-") {
		return v + "Z"
	}
	return v
}

// decodeEntry turns one stream entry into a message. An entry that cannot be a proper event (no
// id field, no event_data field) is still returned, never dropped: its UUID is derived from the
// stream and entry id and metadata driver.HeaderInvalidReason says what is wrong; reason is that
// text, "" for a good entry.
func decodeEntry(stream, entryID string, values map[string]any) (msg *message.Message, reason string) {
	md := make(message.Metadata, len(values))
	var (
		id, uuid string
		payload  []byte
		hasData  bool
	)
	for k, raw := range values {
		v := fieldString(raw)
		switch k {
		case FieldID:
			id = v
		case FieldData:
			payload, hasData = []byte(v), true
		case FieldWatermillUUID:
			uuid = v
		case FieldTime:
			md.Set(driver.HeaderTime, fromISO(v))
		default:
			if mk, ok := metadataOfField[k]; ok {
				md.Set(mk, v)
			} else {
				md.Set(k, v)
			}
		}
	}
	var problems []string
	if id == "" {
		problems = append(problems, fmt.Sprintf("stream entry has no %q field", FieldID))
	} else {
		md.Set(driver.HeaderID, id)
	}
	if !hasData {
		problems = append(problems, fmt.Sprintf("stream entry has no %q field", FieldData))
	}
	if uuid == "" {
		uuid = id
	}
	if uuid == "" {
		uuid = "redis:" + stream + "/" + entryID
	}
	if len(problems) > 0 {
		reason = strings.Join(problems, "; ")
		md.Set(driver.HeaderInvalidReason, reason)
	}
	msg = message.NewMessage(uuid, payload)
	msg.Metadata = md
	return msg, reason
}

func fieldString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	case nil:
		return ""
	default:
		return fmt.Sprint(s)
	}
}

// DecodeEntry turns a stream entry read with XRANGE into a message as this backend's subscriber
// would deliver it (tools such as `eventbus dlq` read poison streams that way).
func DecodeEntry(stream string, e redis.XMessage) *message.Message {
	msg, _ := decodeEntry(stream, e.ID, e.Values)
	return msg
}

// EncodeEntry returns the stream entry fields this backend's publisher would XADD for msg, for
// tools that add entries in a transaction of their own (`eventbus dlq redrive` adds the
// redriven entry and deletes its poison entry in one MULTI).
func EncodeEntry(stream string, msg *message.Message) (map[string]any, error) {
	return marshaller{}.Marshal(stream, msg)
}
