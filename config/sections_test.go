package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/config"
)

// The config package lists no backend: drivers register their sections. Its own tests stand in
// for three drivers by registering sections named like them.
func init() {
	for _, s := range []string{"kafka", "redis", "rabbitmq"} {
		config.RegisterSection(s)
	}
}

func TestUnregisteredSectionIsUnknown(t *testing.T) {
	_, err := config.Parse("eventbus.yaml", []byte("backend: kafka\nkafak: {}\nnats: {}\n"))
	require.ErrorIs(t, err, config.ErrInvalid)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 2)
	assert.Equal(t, `eventbus.yaml:2: kafak: unknown key (did you mean "kafka"?)`, lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "eventbus.yaml:3: nats: unknown key (known keys: backend, kafka, rabbitmq, redis, router"), lines[1])

	config.RegisterSection("nats")
	_, err = config.Parse("eventbus.yaml", []byte("backend: nats\nnats: {}\n"))
	assert.NoError(t, err, "a registered section is known")
}
