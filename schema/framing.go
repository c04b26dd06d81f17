package schema

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/eventbus-go/eventbus/bus"
)

// magicByte opens every value and key framed by a Confluent schema registry serializer.
const magicByte = 0

// frameLen is the framing's length: the magic byte and the 4-byte big-endian schema id.
const frameLen = 5

// Frame returns payload behind the schema registry framing for schema id.
func Frame(id int, payload []byte) []byte {
	out := make([]byte, frameLen+len(payload))
	out[0] = magicByte
	binary.BigEndian.PutUint32(out[1:frameLen], uint32(id))
	copy(out[frameLen:], payload)
	return out
}

// Unframe splits a framed value into its schema id and Avro payload; an error wrapping
// bus.ErrInvalidEvent when data is not framed.
func Unframe(data []byte) (id int, payload []byte, err error) {
	if len(data) < frameLen || data[0] != magicByte {
		return 0, nil, fmt.Errorf("%w: not in the schema registry's framing (magic byte 0 and a 4-byte schema id; got %d bytes)", bus.ErrInvalidEvent, len(data))
	}
	return int(binary.BigEndian.Uint32(data[1:frameLen])), data[frameLen:], nil
}

// ValueSubject is the registry subject of an event type's value schema on topic, under the
// TopicRecordName strategy Open edX's Kafka producers use: "<topic>-<record full name>", which
// for Open edX's schemas is "<topic>-<event type>.CloudEvent".
func ValueSubject(topic string, s avro.Schema) string {
	if n, ok := s.(avro.NamedSchema); ok {
		return topic + "-" + n.FullName()
	}
	return topic + "-" + string(s.Type())
}

// keySchemaText is the key's schema: Open edX keys by a string field (a course key, say), whose
// record name under TopicRecordName is the type's, "string".
const keySchemaText = `"string"`

// KeySubject is the registry subject of the ordering key on topic, "<topic>-string".
func KeySubject(topic string) string { return topic + "-string" }

var keySchema = avro.MustParse(keySchemaText)

// resolver turns framed Avro into the catalog's plain Avro and back, with the registry.
type resolver struct {
	catalog      *Catalog
	registry     *Registry
	autoRegister bool
	sourceHost   string
	sourceLib    string
}

// encodeValue frames an event's plain Avro payload (written with the catalog's latest schema
// for its type) with the id of that schema under its subject on topic.
func (r *resolver) encodeValue(ctx context.Context, topic, eventType string, payload []byte) ([]byte, error) {
	ver, err := r.catalog.Latest(eventType)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bus.ErrInvalidEvent, err)
	}
	// The file's text, not the parsing canonical form, which drops defaults and docs the
	// registry's compatibility checks need.
	id, err := r.schemaID(ctx, ValueSubject(topic, ver.Schema), ver.Text)
	if err != nil {
		return nil, err
	}
	return Frame(id, payload), nil
}

func (r *resolver) schemaID(ctx context.Context, subject, text string) (int, error) {
	if r.autoRegister {
		return r.registry.Register(ctx, subject, text)
	}
	id, err := r.registry.Lookup(ctx, subject, text)
	if errors.Is(err, ErrNotRegistered) {
		return 0, fmt.Errorf("%w (schemas.registry.auto_register is false: register it with `eventbus schema register`)", err)
	}
	return id, err
}

// encodeKey returns the ordering key as a framed Avro string.
func (r *resolver) encodeKey(ctx context.Context, topic, key string) ([]byte, error) {
	id, err := r.schemaID(ctx, KeySubject(topic), keySchemaText)
	if err != nil {
		return nil, err
	}
	b, err := avro.Marshal(keySchema, key)
	if err != nil {
		return nil, err
	}
	return Frame(id, b), nil
}

// decodeValue turns a framed value into plain Avro of the catalog's latest schema for
// eventType, resolving the writer's schema (fetched by id) against it when they differ.
func (r *resolver) decodeValue(ctx context.Context, eventType string, data []byte) ([]byte, error) {
	id, payload, err := Unframe(data)
	if err != nil {
		return nil, err
	}
	ver, err := r.catalog.Latest(eventType)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bus.ErrInvalidEvent, err)
	}
	text, err := r.registry.SchemaByID(ctx, id)
	if err != nil {
		return nil, err
	}
	writer, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return nil, fmt.Errorf("schema id %d from the registry does not parse: %w: %w", id, bus.ErrInvalidEvent, err)
	}
	if writer.String() == ver.Schema.String() {
		return payload, nil
	}
	resolved, err := avro.NewSchemaCompatibility().Resolve(ver.Schema, writer)
	if err != nil {
		return nil, fmt.Errorf("writer schema id %d cannot be read with %s: %w: %w", id, ver.File, bus.ErrInvalidEvent, err)
	}
	var v any
	if err := decodeExact(resolved, payload, &v); err != nil {
		return nil, fmt.Errorf("value written with schema id %d: %w", id, err)
	}
	out, err := avro.Marshal(ver.Schema, v)
	if err != nil {
		return nil, fmt.Errorf("value written with schema id %d does not fit %s: %w: %w", id, ver.File, bus.ErrInvalidEvent, err)
	}
	return out, nil
}

// decodeKey reads a framed Avro key back into text: a string key as it is, another type as
// its Go rendering. A key that is not framed is returned as it is.
func (r *resolver) decodeKey(ctx context.Context, data []byte) (string, error) {
	id, payload, err := Unframe(data)
	if err != nil {
		return string(data), nil
	}
	text, err := r.registry.SchemaByID(ctx, id)
	if err != nil {
		return "", err
	}
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return "", fmt.Errorf("key schema id %d does not parse: %w: %w", id, bus.ErrInvalidEvent, err)
	}
	var v any
	if err := decodeExact(s, payload, &v); err != nil {
		return "", fmt.Errorf("key written with schema id %d: %w", id, err)
	}
	if str, ok := v.(string); ok {
		return str, nil
	}
	return fmt.Sprint(v), nil
}

// pythonISOFormat is how Python's datetime.isoformat() writes an aware UTC time with
// microseconds; Open edX's consumers parse ce_time with datetime.fromisoformat, which before
// Python 3.11 rejects the "Z" that RFC 3339 writers use.
const pythonISOFormat = "2006-01-02T15:04:05.000000-07:00"

func toPythonISO(v string) string {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return v
	}
	return t.UTC().Format(pythonISOFormat)
}

// isInvalid reports whether err is about the message rather than the registry's availability.
func isInvalid(err error) bool {
	return errors.Is(err, bus.ErrInvalidEvent) || errors.Is(err, ErrNotRegistered)
}
