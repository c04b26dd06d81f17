package bus

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Message metadata keys of the event envelope: the CloudEvents 1.0 binary-mode header names
// that Open edX's event bus writes on Kafka, so its producers and consumers interoperate with
// ours. HeaderKey carries the ordering key (on Kafka, the record key).
const (
	HeaderID          = driver.HeaderID
	HeaderType        = driver.HeaderType
	HeaderSource      = driver.HeaderSource
	HeaderTime        = driver.HeaderTime
	HeaderSpecVersion = driver.HeaderSpecVersion
	HeaderSubject     = driver.HeaderSubject
	HeaderContentType = driver.HeaderContentType
	HeaderKey         = driver.HeaderKey
)

// HeaderInvalidReason marks a consumed message that a backend could not turn into a proper
// event (a Redis entry without an id, say). The backend delivers it anyway, never dropping it,
// with this header saying what is wrong; the poison middleware sends such a message straight
// to the poison topic with the reason.
const HeaderInvalidReason = driver.HeaderInvalidReason

// SpecVersion is the CloudEvents version written to ce_specversion.
const SpecVersion = "1.0"

// reservedPrefix marks metadata that Watermill adapters keep for themselves.
const reservedPrefix = "_watermill"

var envelopeHeaders = map[string]bool{
	HeaderID: true, HeaderType: true, HeaderSource: true, HeaderTime: true,
	HeaderSpecVersion: true, HeaderSubject: true, HeaderContentType: true, HeaderKey: true,
}

// Event is one CloudEvents 1.0 event as the bus publishes it: the attributes travel as message
// metadata (binary mode) and Data as the payload.
type Event struct {
	// ID is ce_id. Publish generates a UUID when it is empty. Consumers deduplicate by it.
	ID string
	// Type is ce_type, e.g. "org.openedx.learning.course.enrollment.created.v1". Required.
	Type string
	// Source is ce_source, e.g. "openedx/lms/web". Required.
	Source string
	// Subject is ce_subject, optional.
	Subject string
	// Time is ce_time; Publish uses the current time when it is zero.
	Time time.Time
	// SpecVersion is ce_specversion; "1.0" when empty.
	SpecVersion string
	// ContentType is the content-type header. When Data is encoded by the codec it defaults to the
	// codec's type; for raw bytes it is sent as given.
	ContentType string
	// Key is the ordering key: events with the same key keep their order on backends that declare
	// PerKeyOrdering (on Kafka it is the record key, so it also picks the partition).
	Key string
	// Data is the payload. []byte and json.RawMessage are sent untouched; any other value is
	// encoded with the bus's codec (JSON by default). After ParseEvent it is the raw []byte.
	Data any
	// Metadata holds further headers (CloudEvents extensions, trace context). A key that the
	// envelope uses is refused.
	Metadata map[string]string
}

// NewMessage builds the Watermill message for ev: fills ID, Time and SpecVersion when absent and
// checks the required attributes. The message's UUID is the event id.
func NewMessage(ev Event, codec Codec) (*message.Message, error) {
	if codec == nil {
		codec = JSON
	}
	if ev.ID == "" {
		ev.ID = watermill.NewUUID()
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("event %s: type (ce_type) is required: %w", ev.ID, ErrInvalidEvent)
	}
	if ev.Source == "" {
		return nil, fmt.Errorf("event %s: source (ce_source) is required: %w", ev.ID, ErrInvalidEvent)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.SpecVersion == "" {
		ev.SpecVersion = SpecVersion
	}
	var payload []byte
	switch d := ev.Data.(type) {
	case nil:
	case []byte:
		payload = d
	case json.RawMessage:
		payload = d
		if ev.ContentType == "" {
			ev.ContentType = JSON.ContentType()
		}
	default:
		var err error
		if tc, ok := codec.(TypedCodec); ok {
			payload, err = tc.MarshalEvent(ev.Type, d)
		} else {
			payload, err = codec.Marshal(d)
		}
		if err != nil {
			return nil, fmt.Errorf("event %s: encode data as %s: %w", ev.ID, codec.ContentType(), err)
		}
		if ev.ContentType == "" {
			ev.ContentType = codec.ContentType()
		}
	}

	msg := message.NewMessage(ev.ID, payload)
	for k, v := range ev.Metadata {
		if k == "" || envelopeHeaders[k] || strings.HasPrefix(k, reservedPrefix) {
			return nil, fmt.Errorf("event %s: metadata key %q is reserved by the envelope: %w", ev.ID, k, ErrInvalidEvent)
		}
		msg.Metadata.Set(k, v)
	}
	msg.Metadata.Set(HeaderID, ev.ID)
	msg.Metadata.Set(HeaderType, ev.Type)
	msg.Metadata.Set(HeaderSource, ev.Source)
	msg.Metadata.Set(HeaderSpecVersion, ev.SpecVersion)
	msg.Metadata.Set(HeaderTime, ev.Time.UTC().Format(time.RFC3339Nano))
	setIf(msg.Metadata, HeaderSubject, ev.Subject)
	setIf(msg.Metadata, HeaderContentType, ev.ContentType)
	setIf(msg.Metadata, HeaderKey, ev.Key)
	return msg, nil
}

func setIf(md message.Metadata, k, v string) {
	if v != "" {
		md.Set(k, v)
	}
}

// ParseEvent reads the envelope back from a consumed message. Data is the payload as raw bytes.
// It returns the event together with an error wrapping ErrInvalidEvent when a required attribute
// is missing or ce_time is malformed, so a caller can still log or dead-letter what it got.
func ParseEvent(msg *message.Message) (Event, error) {
	md := msg.Metadata
	ev := Event{
		ID:          md.Get(HeaderID),
		Type:        md.Get(HeaderType),
		Source:      md.Get(HeaderSource),
		Subject:     md.Get(HeaderSubject),
		SpecVersion: md.Get(HeaderSpecVersion),
		ContentType: md.Get(HeaderContentType),
		Key:         md.Get(HeaderKey),
		Data:        []byte(msg.Payload),
	}
	if ev.ID == "" {
		ev.ID = msg.UUID
	}
	for k, v := range md {
		if envelopeHeaders[k] {
			continue
		}
		if ev.Metadata == nil {
			ev.Metadata = map[string]string{}
		}
		ev.Metadata[k] = v
	}
	var problems []string
	if t := md.Get(HeaderTime); t != "" {
		parsed, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			problems = append(problems, fmt.Sprintf("ce_time %q is not RFC 3339", t))
		}
		ev.Time = parsed
	}
	if ev.Type == "" {
		problems = append(problems, "no ce_type")
	}
	if ev.Source == "" {
		problems = append(problems, "no ce_source")
	}
	if len(problems) > 0 {
		return ev, fmt.Errorf("message %s: %s: %w", msg.UUID, strings.Join(problems, ", "), ErrInvalidEvent)
	}
	return ev, nil
}

// DecodeData decodes the event's data into v with the codec (JSON when nil). Data must be raw
// bytes, as ParseEvent leaves it. Its errors wrap ErrInvalidEvent (and the codec's error), so
// the poison-queue middleware sends an undecodable event straight to the poison queue instead
// of retrying it.
func (ev Event) DecodeData(codec Codec, v any) error {
	if codec == nil {
		codec = JSON
	}
	raw, ok := ev.Data.([]byte)
	if !ok {
		return fmt.Errorf("event %s: data is %T, not raw bytes: %w", ev.ID, ev.Data, ErrInvalidEvent)
	}
	if ct := ev.ContentType; ct != "" && !strings.HasPrefix(ct, codec.ContentType()) {
		return fmt.Errorf("event %s: content-type is %q, the codec reads %q: %w", ev.ID, ct, codec.ContentType(), ErrInvalidEvent)
	}
	unmarshal := codec.Unmarshal
	if tc, ok := codec.(TypedCodec); ok {
		unmarshal = func(data []byte, v any) error { return tc.UnmarshalEvent(ev.Type, data, v) }
	}
	if err := unmarshal(raw, v); err != nil {
		return fmt.Errorf("event %s: decode %s data: %w: %w", ev.ID, codec.ContentType(), ErrInvalidEvent, err)
	}
	return nil
}
