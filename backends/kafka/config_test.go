package kafka_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

func TestConfigSharedKeys(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`kafka:
  consumer_group: lms
  consumer: {start_from: newest, max_in_flight: 64, nack_delay: 1s, drain_timeout: 2s}
  publisher: {acks: leader, max_message_bytes: 2000000}
`))
	require.NoError(t, err)
	bc, err := bus.BackendConfig(cfg)
	require.NoError(t, err)
	kc := bc.(*kafka.Config)
	assert.Equal(t, "newest", kc.Consumer.StartFrom)
	assert.Equal(t, 64, kc.Consumer.MaxInFlight)
	assert.Equal(t, time.Second, kc.Consumer.NackDelay)
	assert.Equal(t, 2*time.Second, kc.Consumer.DrainTimeout)
	assert.Equal(t, "leader", kc.Publisher.Acks)
	assert.Equal(t, 2000000, kc.Publisher.MaxMessageBytes)
	assert.Equal(t, "all", kafka.DefaultConfig().Publisher.Acks)
	assert.Equal(t, 1000000, kafka.DefaultConfig().Publisher.MaxMessageBytes)
}

// TestRenamedKeys: the keys of earlier versions fail at their line, naming the new key.
func TestRenamedKeys(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`kafka:
  initial_offset: newest
  producer:
    acks: all
  consumer:
    nack_resend_delay: 1s
    start_from: latest
`))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Equal(t, []string{
		"eventbus.yaml:2: kafka.initial_offset: renamed to kafka.consumer.start_from",
		"eventbus.yaml:3: kafka.producer: renamed to kafka.publisher",
		"eventbus.yaml:6: kafka.consumer.nack_resend_delay: renamed to kafka.consumer.nack_delay",
		`eventbus.yaml:7: kafka.consumer.start_from: "latest": want oldest or newest`,
	}, strings.Split(err.Error(), "\n"))
}
