package bus_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
)

func TestNewMessageFillsEnvelope(t *testing.T) {
	before := time.Now()
	msg, err := bus.NewMessage(bus.Event{Type: "t.v1", Source: "s", Key: "k", Data: map[string]int{"a": 1}}, nil)
	require.NoError(t, err)
	md := msg.Metadata
	assert.NotEmpty(t, md.Get(bus.HeaderID))
	assert.Equal(t, msg.UUID, md.Get(bus.HeaderID))
	assert.Equal(t, "1.0", md.Get(bus.HeaderSpecVersion))
	assert.Equal(t, "application/json", md.Get(bus.HeaderContentType))
	assert.Equal(t, "k", md.Get(bus.HeaderKey))
	ts, err := time.Parse(time.RFC3339Nano, md.Get(bus.HeaderTime))
	require.NoError(t, err)
	assert.False(t, ts.Before(before.Truncate(time.Second)))
	assert.JSONEq(t, `{"a":1}`, string(msg.Payload))
}

func TestRawDataPassesUntouched(t *testing.T) {
	raw := []byte{0, 1, 2, 0xff}
	msg, err := bus.NewMessage(bus.Event{Type: "t", Source: "s", Data: raw, ContentType: "application/avro"}, nil)
	require.NoError(t, err)
	assert.Equal(t, raw, []byte(msg.Payload))
	assert.Equal(t, "application/avro", msg.Metadata.Get(bus.HeaderContentType))

	msg, err = bus.NewMessage(bus.Event{Type: "t", Source: "s", Data: json.RawMessage(`{ "spaced" : true }`)}, nil)
	require.NoError(t, err)
	assert.Equal(t, `{ "spaced" : true }`, string(msg.Payload))
	assert.Equal(t, "application/json", msg.Metadata.Get(bus.HeaderContentType))
}

func TestNewMessageRejects(t *testing.T) {
	for name, ev := range map[string]bus.Event{
		"type (ce_type) is required":                         {Source: "s"},
		"source (ce_source) is required":                     {Type: "t"},
		`metadata key "ce_id" is reserved`:                   {Type: "t", Source: "s", Metadata: map[string]string{"ce_id": "x"}},
		`metadata key "_watermill_message_uuid" is reserved`: {Type: "t", Source: "s", Metadata: map[string]string{"_watermill_message_uuid": "x"}},
		"encode data as application/json":                    {Type: "t", Source: "s", Data: make(chan int)},
	} {
		_, err := bus.NewMessage(ev, nil)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), name)
	}
	_, err := bus.NewMessage(bus.Event{ID: "e-1", Source: "s"}, nil)
	assert.True(t, errors.Is(err, bus.ErrInvalidEvent))
	assert.Contains(t, err.Error(), "event e-1")
}

func TestParseEventRoundTrip(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	in := bus.Event{ID: "id-1", Type: "t", Source: "s", Subject: "sub", Time: when, Key: "k",
		Data: map[string]string{"x": "y"}, Metadata: map[string]string{"traceparent": "tp"}}
	msg, err := bus.NewMessage(in, nil)
	require.NoError(t, err)
	out, err := bus.ParseEvent(msg)
	require.NoError(t, err)
	assert.Equal(t, "id-1", out.ID)
	assert.Equal(t, "sub", out.Subject)
	assert.True(t, when.Equal(out.Time))
	assert.Equal(t, "k", out.Key)
	assert.Equal(t, map[string]string{"traceparent": "tp"}, out.Metadata)
	var data map[string]string
	require.NoError(t, out.DecodeData(nil, &data))
	assert.Equal(t, "y", data["x"])
}

func TestParseEventReportsWhatIsMissing(t *testing.T) {
	msg := message.NewMessage("uuid-1", []byte("x"))
	msg.Metadata.Set(bus.HeaderTime, "yesterday")
	ev, err := bus.ParseEvent(msg)
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Equal(t, `message uuid-1: ce_time "yesterday" is not RFC 3339, no ce_type, no ce_source: invalid event`, err.Error())
	assert.Equal(t, "uuid-1", ev.ID, "the Watermill UUID stands in for a missing ce_id")

	// Open edX writes ce_time with a +00:00 offset and microseconds.
	msg = message.NewMessage("u", nil)
	msg.Metadata.Set(bus.HeaderType, "t")
	msg.Metadata.Set(bus.HeaderSource, "s")
	msg.Metadata.Set(bus.HeaderTime, "2023-05-04T14:23:04.123456+00:00")
	ev, err = bus.ParseEvent(msg)
	require.NoError(t, err)
	assert.Equal(t, 123456000, ev.Time.Nanosecond())
}

func TestDecodeDataChecksContentType(t *testing.T) {
	err := bus.Event{ID: "e", ContentType: "application/avro", Data: []byte("x")}.DecodeData(nil, new(any))
	assert.ErrorContains(t, err, `event e: content-type is "application/avro", the codec reads "application/json"`)
}
