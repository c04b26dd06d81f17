package driver

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// WatermillLogger adapts l for Watermill and its adapters as watermill.NewSlogLogger does, but
// checks the level before turning a call's fields into slog attributes: Watermill's Kafka
// subscriber and router log every message at trace or debug level, and building those
// attributes for a level that is off cost about 5% of a Kafka consumer's CPU.
func WatermillLogger(l *slog.Logger) watermill.LoggerAdapter {
	return levelGuard{next: watermill.NewSlogLogger(l), l: l}
}

type levelGuard struct {
	next watermill.LoggerAdapter
	l    *slog.Logger
}

func (g levelGuard) on(level slog.Level) bool { return g.l.Enabled(context.Background(), level) }

func (g levelGuard) Error(msg string, err error, fields watermill.LogFields) {
	if g.on(slog.LevelError) {
		g.next.Error(msg, err, fields)
	}
}

func (g levelGuard) Info(msg string, fields watermill.LogFields) {
	if g.on(slog.LevelInfo) {
		g.next.Info(msg, fields)
	}
}

func (g levelGuard) Debug(msg string, fields watermill.LogFields) {
	if g.on(slog.LevelDebug) {
		g.next.Debug(msg, fields)
	}
}

func (g levelGuard) Trace(msg string, fields watermill.LogFields) {
	if g.on(watermill.LevelTrace) {
		g.next.Trace(msg, fields)
	}
}

func (g levelGuard) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelGuard{next: g.next.With(fields), l: g.l}
}
