package bus

import "encoding/json"

// Codec turns an event's data into the message payload and back.
type Codec interface {
	// ContentType is the media type written to the content-type header, e.g. "application/json".
	ContentType() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default codec.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// TypedCodec is a Codec whose encoding depends on the event's type, as Avro's does (one schema
// per event type). NewMessage calls MarshalEvent instead of Marshal, and Event.DecodeData calls
// UnmarshalEvent instead of Unmarshal, when the codec implements it; a plain Codec is unaffected.
type TypedCodec interface {
	Codec
	// MarshalEvent encodes v as data of an event of type eventType (ce_type).
	MarshalEvent(eventType string, v any) ([]byte, error)
	// UnmarshalEvent decodes data of an event of type eventType into v.
	UnmarshalEvent(eventType string, data []byte, v any) error
}
