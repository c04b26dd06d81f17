package driver_test

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/stretchr/testify/assert"

	"github.com/eventbus-go/eventbus/bus/driver"
)

func TestWatermillLoggerKeepsLevelsAndFields(t *testing.T) {
	var out bytes.Buffer
	l := driver.WatermillLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))).
		With(watermill.LogFields{"topic": "orders"})
	l.Trace("trace line", watermill.LogFields{"n": 1})
	l.Debug("debug line", nil)
	l.Info("info line", watermill.LogFields{"n": 2})
	l.Error("error line", errors.New("boom"), nil)
	s := out.String()
	assert.NotContains(t, s, "trace line")
	assert.NotContains(t, s, "debug line")
	assert.Contains(t, s, `msg="info line" topic=orders n=2`)
	assert.Contains(t, s, `msg="error line" topic=orders error=boom`)

	out.Reset()
	l = driver.WatermillLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: watermill.LevelTrace})))
	l.Trace("trace line", watermill.LogFields{"n": 3})
	l.Debug("debug line", nil)
	assert.Contains(t, out.String(), `msg="trace line" n=3`)
	assert.Contains(t, out.String(), `msg="debug line"`)
}

// BenchmarkWatermillLogger: a trace line with a message's fields, with trace off, through the
// guarded adapter and through Watermill's own.
func BenchmarkWatermillLogger(b *testing.B) {
	l := slog.New(slog.DiscardHandler)
	fields := watermill.LogFields{"message_uuid": "x", "kafka_partition": 3, "kafka_partition_offset": 1042, "topic": "orders"}
	for name, a := range map[string]watermill.LoggerAdapter{"guarded": driver.WatermillLogger(l), "watermill": watermill.NewSlogLogger(l)} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Trace("Received message from Kafka", fields)
			}
		})
	}
}
