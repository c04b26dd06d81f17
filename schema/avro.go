package schema

import (
	"bytes"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/eventbus-go/eventbus/bus"
)

// ContentType is the media type of Avro event data, as Open edX writes it.
const ContentType = "application/avro"

// Codec encodes event data as Avro binary with the catalog's newest schema for the event's type.
// It is a bus.TypedCodec: give it to bus.WithCodec, and NewMessage and Event.DecodeData pass it
// the event type. Data may be a Go struct whose fields carry `avro:"name"` tags, a pointer to
// one, or a map[string]any; decoding fills a struct or a map[string]any.
//
// The payload carries no schema id: writer and reader must use the same schema, as on Open
// edX's Redis bus. On Kafka in openedx mode the registry framing is added and removed around it
// (see Open), so the codec always sees plain Avro.
type Codec struct {
	catalog *Catalog
}

var _ bus.TypedCodec = (*Codec)(nil)

// NewCodec returns an Avro codec over the catalog.
func NewCodec(c *Catalog) *Codec { return &Codec{catalog: c} }

// Catalog is the catalog the codec takes its schemas from.
func (c *Codec) Catalog() *Catalog { return c.catalog }

// ContentType is "application/avro".
func (c *Codec) ContentType() string { return ContentType }

// Marshal fails: Avro needs the event type to pick the schema. bus.NewMessage calls MarshalEvent.
func (c *Codec) Marshal(any) ([]byte, error) {
	return nil, fmt.Errorf("avro codec: Marshal without an event type; use MarshalEvent (bus.NewMessage does): %w", bus.ErrInvalidEvent)
}

// Unmarshal fails: Avro needs the event type to pick the schema. Event.DecodeData calls
// UnmarshalEvent.
func (c *Codec) Unmarshal([]byte, any) error {
	return fmt.Errorf("avro codec: Unmarshal without an event type; use UnmarshalEvent (Event.DecodeData does): %w", bus.ErrInvalidEvent)
}

// MarshalEvent encodes v with eventType's newest schema. A type without a schema, or data that
// does not match it, is an error wrapping bus.ErrInvalidEvent that names the field, e.g.
// "enrollment: user: missing required field is_active".
func (c *Codec) MarshalEvent(eventType string, v any) ([]byte, error) {
	ver, err := c.catalog.Latest(eventType)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bus.ErrInvalidEvent, err)
	}
	out, err := avro.Marshal(ver.Schema, v)
	if err != nil {
		return nil, fmt.Errorf("data does not match schema %s (version %d of %s): %w: %w", ver.File, ver.Number, eventType, bus.ErrInvalidEvent, err)
	}
	return out, nil
}

// UnmarshalEvent decodes data with eventType's newest schema into v (a pointer to a struct, or
// to a map[string]any or any). Data that is truncated, has bytes left over, or does not fit v
// is an error wrapping bus.ErrInvalidEvent.
func (c *Codec) UnmarshalEvent(eventType string, data []byte, v any) error {
	ver, err := c.catalog.Latest(eventType)
	if err != nil {
		return fmt.Errorf("%w: %w", bus.ErrInvalidEvent, err)
	}
	return decodeExact(ver.Schema, data, v)
}

// decodeExact decodes one value of schema s from data into v and fails unless exactly all of
// data was used: hamba/avro's Unmarshal reports neither a truncated input nor trailing bytes.
func decodeExact(s avro.Schema, data []byte, v any) error {
	br := bytes.NewReader(data)
	// A one-byte buffer keeps the reader from reading ahead, so br.Len() is what is left over.
	r := avro.NewReader(br, 1)
	r.ReadVal(s, v)
	if r.Error != nil {
		return fmt.Errorf("avro data (%d bytes) does not decode: %w: %w", len(data), bus.ErrInvalidEvent, r.Error)
	}
	if br.Len() > 0 {
		return fmt.Errorf("avro data has %d bytes left over after the value (%d bytes): %w", br.Len(), len(data)-br.Len(), bus.ErrInvalidEvent)
	}
	return nil
}
