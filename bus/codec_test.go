package bus_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
)

// typedJSON is JSON that records the event type it was given, as a schema codec needs it.
type typedJSON struct{ marshalled, unmarshalled []string }

func (c *typedJSON) ContentType() string                { return "application/json" }
func (c *typedJSON) Marshal(v any) ([]byte, error)      { panic("NewMessage must call MarshalEvent") }
func (c *typedJSON) Unmarshal(data []byte, v any) error { panic("DecodeData must call UnmarshalEvent") }

func (c *typedJSON) MarshalEvent(eventType string, v any) ([]byte, error) {
	c.marshalled = append(c.marshalled, eventType)
	return json.Marshal(v)
}

func (c *typedJSON) UnmarshalEvent(eventType string, data []byte, v any) error {
	c.unmarshalled = append(c.unmarshalled, eventType)
	return json.Unmarshal(data, v)
}

func TestTypedCodecSeesTheEventType(t *testing.T) {
	codec := &typedJSON{}
	msg, err := bus.NewMessage(bus.Event{Type: "t.v1", Source: "s", Data: map[string]int{"n": 1}}, codec)
	require.NoError(t, err)
	ev, err := bus.ParseEvent(msg)
	require.NoError(t, err)
	var got map[string]int
	require.NoError(t, ev.DecodeData(codec, &got))
	assert.Equal(t, map[string]int{"n": 1}, got)
	assert.Equal(t, []string{"t.v1"}, codec.marshalled)
	assert.Equal(t, []string{"t.v1"}, codec.unmarshalled)
}
