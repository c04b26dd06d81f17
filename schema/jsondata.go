package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/eventbus-go/eventbus/bus"
)

// FromJSON turns JSON data of an event of type eventType into the Go value the codec encodes
// with that type's schema: numbers become the integer or float type the schema wants, a bytes
// or fixed field takes a string, and a union takes the plain value (as Open edX's Python
// libraries write it) or Avro's JSON form {"type": value}. It is for tools that take events as
// JSON (`eventbus publish`). Data that does not fit is an error naming the field, wrapping
// bus.ErrInvalidEvent.
func (c *Codec) FromJSON(eventType string, data []byte) (any, error) {
	ver, err := c.catalog.Latest(eventType)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bus.ErrInvalidEvent, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("data is not JSON: %w: %w", bus.ErrInvalidEvent, err)
	}
	out, err := fromJSON(ver.Schema, v, "")
	if err != nil {
		return nil, fmt.Errorf("data does not match schema %s of %s: %w: %w", ver.File, eventType, bus.ErrInvalidEvent, err)
	}
	return out, nil
}

func fromJSON(s avro.Schema, v any, path string) (any, error) {
	at := func(format string, args ...any) error {
		where := path
		if where == "" {
			where = "data"
		}
		return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, at("want an object for record %s, got %s", s.FullName(), jsonKind(v))
		}
		out := make(map[string]any, len(s.Fields()))
		for _, f := range s.Fields() {
			fv, present := m[f.Name()]
			if !present {
				if f.HasDefault() {
					continue
				}
				return nil, at("missing required field %s", f.Name())
			}
			conv, err := fromJSON(f.Type(), fv, join(path, f.Name()))
			if err != nil {
				return nil, err
			}
			out[f.Name()] = conv
		}
		for k := range m {
			if !hasField(s, k) {
				return nil, at("field %s is not in record %s", k, s.FullName())
			}
		}
		return out, nil
	case *avro.RefSchema:
		return fromJSON(s.Schema(), v, path)
	case *avro.UnionSchema:
		if v == nil {
			if s.Nullable() {
				return nil, nil
			}
			return nil, at("null is not allowed")
		}
		if m, ok := v.(map[string]any); ok && len(m) == 1 {
			for name, inner := range m {
				if t, _ := s.Types().Get(name); t != nil {
					conv, err := fromJSON(t, inner, path)
					if err != nil {
						return nil, err
					}
					return map[string]any{name: conv}, nil
				}
			}
		}
		var first error
		for _, t := range s.Types() {
			if t.Type() == avro.Null {
				continue
			}
			conv, err := fromJSON(t, v, path)
			if err == nil {
				return conv, nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, first
	case *avro.ArraySchema:
		a, ok := v.([]any)
		if !ok {
			return nil, at("want an array, got %s", jsonKind(v))
		}
		out := make([]any, len(a))
		for i, e := range a {
			conv, err := fromJSON(s.Items(), e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = conv
		}
		return out, nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, at("want an object for a map, got %s", jsonKind(v))
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			conv, err := fromJSON(s.Values(), e, join(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = conv
		}
		return out, nil
	case *avro.EnumSchema:
		str, ok := v.(string)
		if !ok {
			return nil, at("want one of %s, got %s", strings.Join(s.Symbols(), ", "), jsonKind(v))
		}
		return str, nil
	case *avro.FixedSchema:
		str, ok := v.(string)
		if !ok {
			return nil, at("want a string for fixed %s, got %s", s.FullName(), jsonKind(v))
		}
		return []byte(str), nil
	case *avro.PrimitiveSchema:
		return primitiveFromJSON(s.Type(), v, at)
	}
	return nil, at("schema type %s is not supported", s.Type())
}

func primitiveFromJSON(t avro.Type, v any, at func(string, ...any) error) (any, error) {
	switch t {
	case avro.Null:
		if v != nil {
			return nil, at("want null, got %s", jsonKind(v))
		}
		return nil, nil
	case avro.Boolean:
		b, ok := v.(bool)
		if !ok {
			return nil, at("want a boolean, got %s", jsonKind(v))
		}
		return b, nil
	case avro.String:
		s, ok := v.(string)
		if !ok {
			return nil, at("want a string, got %s", jsonKind(v))
		}
		return s, nil
	case avro.Bytes:
		s, ok := v.(string)
		if !ok {
			return nil, at("want a string for bytes, got %s", jsonKind(v))
		}
		return []byte(s), nil
	case avro.Int, avro.Long:
		n, ok := v.(json.Number)
		if !ok {
			return nil, at("want an integer, got %s", jsonKind(v))
		}
		i, err := n.Int64()
		if err != nil {
			return nil, at("want an integer, got %s", n)
		}
		if t == avro.Int {
			if int64(int32(i)) != i {
				return nil, at("%d does not fit an Avro int", i)
			}
			return int(i), nil
		}
		return i, nil
	case avro.Float, avro.Double:
		n, ok := v.(json.Number)
		if !ok {
			return nil, at("want a number, got %s", jsonKind(v))
		}
		f, err := n.Float64()
		if err != nil {
			return nil, at("want a number, got %s", n)
		}
		if t == avro.Float {
			return float32(f), nil
		}
		return f, nil
	}
	return nil, at("schema type %s is not supported", t)
}

func hasField(s *avro.RecordSchema, name string) bool {
	for _, f := range s.Fields() {
		if f.Name() == name {
			return true
		}
	}
	return false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
