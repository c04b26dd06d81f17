package redis

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus/driver"
)

func TestApplyStartPutsTheGroupJustBeforeThePosition(t *testing.T) {
	for in, want := range map[string]string{
		"1732363200000-5": "1732363200000-4",
		"1732363200000-0": "1732363199999-18446744073709551615",
		"1732363200000":   "1732363199999-18446744073709551615",
		"0-0":             "0",
	} {
		cfg := DefaultConfig()
		require.NoError(t, applyStart(cfg, driver.Options{StartPosition: in}), in)
		assert.Equal(t, want, cfg.Consumer.StartFrom, in)
	}
	cfg := DefaultConfig()
	require.NoError(t, applyStart(cfg, driver.Options{StartAt: time.UnixMilli(1732363200000)}))
	assert.Equal(t, "1732363199999-18446744073709551615", cfg.Consumer.StartFrom)

	err := applyStart(DefaultConfig(), driver.Options{StartPosition: "3:1042"})
	assert.ErrorContains(t, err, `redis start position "3:1042": want a stream id such as 1732363200000-0`)
}
