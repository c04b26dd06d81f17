package rabbitmq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus/driver"
)

func TestStreamStart(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 500_000_000, time.UTC)
	cfg := DefaultConfig()
	_, err := streamStart(cfg, driver.Options{StartAt: at}, "oldest")
	require.ErrorIs(t, err, driver.ErrNotSupported, "a %s queue has no history to start in", cfg.Queue.Type)
	assert.ErrorContains(t, err, "set queue.type: stream")

	cfg.Queue.Type = QueueStream
	s, err := streamStart(cfg, driver.Options{StartAt: at}, "oldest")
	require.NoError(t, err)
	assert.Equal(t, time.Unix(at.Unix(), 0), streamOffsetArg(s), "whole seconds, rounded down")
	s, err = streamStart(cfg, driver.Options{StartPosition: "orders@42"}, "oldest")
	require.NoError(t, err)
	assert.Equal(t, int64(42), streamOffsetArg(s))
	_, err = streamStart(cfg, driver.Options{StartPosition: "orders#7"}, "oldest")
	assert.ErrorContains(t, err, "want a stream offset")
	s, err = streamStart(cfg, driver.Options{}, "newest")
	require.NoError(t, err)
	assert.Equal(t, "next", streamOffsetArg(s))
}
