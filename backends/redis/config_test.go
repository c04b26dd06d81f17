package redis_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	redisbackend "github.com/eventbus-go/eventbus/backends/redis"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
)

func TestConfigFromFile(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`backend: redis
redis:
  addrs: [redis-1:6379, redis-2:6379, redis-3:6379]
  username: lms
  password: ${REDIS_PASSWORD}
  consumer_group: lms-enrollments
  consumer:
    start_from: "2026-11-23T12:00:00Z"
    read_batch: 500
    max_in_flight: 8
    nack_delay: 1s
    drain_timeout: 3s
  publisher: {max_len: 100000, max_message_bytes: 65536}
`))
	require.NoError(t, err)
	bc, err := bus.BackendConfig(cfg.WithEnv(func(k string) (string, bool) { return "s3cret", k == "REDIS_PASSWORD" }))
	require.NoError(t, err)
	rc := bc.(*redisbackend.Config)
	assert.Equal(t, []string{"redis-1:6379", "redis-2:6379", "redis-3:6379"}, rc.Addrs)
	assert.Equal(t, "s3cret", rc.Password.Value())
	assert.Equal(t, "[redacted]", rc.Password.String())
	assert.Equal(t, "2026-11-23T12:00:00Z", rc.Consumer.StartFrom)
	assert.Equal(t, 500, rc.Consumer.ReadBatch)
	assert.Equal(t, 8, rc.Consumer.MaxInFlight)
	assert.Equal(t, time.Second, rc.Consumer.NackDelay)
	assert.Equal(t, 3*time.Second, rc.Consumer.DrainTimeout)
	assert.Equal(t, int64(100000), rc.Publisher.MaxLen)
	assert.Equal(t, 65536, rc.Publisher.MaxMessageBytes)
	assert.Equal(t, time.Second, rc.Consumer.BlockTime, "defaults stay for keys the file does not set")
}

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`backend: redis
redis:
  addrs: [localhost]
  db: 2
  consumer_group: ""
  consumer:
    start_from: yesterday
    read_batch: 0
    min_idle: 10s
    consumer_timeout: 5s
  publisher: {max_message_bytes: 0}
`))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	msg := err.Error()
	for _, want := range []string{
		`eventbus.yaml:3: redis.addrs[0]: "localhost": want host:port`,
		"eventbus.yaml:5: redis.consumer_group: must not be empty",
		`eventbus.yaml:7: redis.consumer.start_from: "yesterday": want oldest, newest, a stream id`,
		"eventbus.yaml:8: redis.consumer.read_batch: must be at least 1",
		"eventbus.yaml:10: redis.consumer.consumer_timeout: must be longer than min_idle (10s), or 0",
		"eventbus.yaml:11: redis.publisher.max_message_bytes: must be at least 1",
	} {
		assert.Contains(t, msg, want)
	}
	assert.Len(t, strings.Split(msg, "\n"), 6, msg)

	cfg, err = config.Parse("eventbus.yaml", []byte("backend: redis\nredis:\n  addrs: [a:1, b:2]\n  db: 3\n"))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.ErrorContains(t, err, "redis.db: a Redis Cluster (several addrs) has only database 0")
}

// TestRenamedKeys: the keys of earlier versions fail at their line, naming the new key.
func TestRenamedKeys(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte(`backend: redis
redis:
  consumer_group: lms
  start_from: newest
  max_in_flight: 4
  nack_resend_delay: 1s
  drain_timeout: 5s
  consumer_name: pod-1
  maxlen: 1000
  consumer:
    nack_resend_delay: 1s
`))
	require.NoError(t, err)
	_, err = bus.BackendConfig(cfg)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Equal(t, []string{
		"eventbus.yaml:4: redis.start_from: renamed to redis.consumer.start_from",
		"eventbus.yaml:5: redis.max_in_flight: renamed to redis.consumer.max_in_flight",
		"eventbus.yaml:6: redis.nack_resend_delay: renamed to redis.consumer.nack_delay",
		"eventbus.yaml:7: redis.drain_timeout: renamed to redis.consumer.drain_timeout",
		"eventbus.yaml:8: redis.consumer_name: renamed to redis.consumer.consumer_name",
		"eventbus.yaml:9: redis.maxlen: renamed to redis.publisher.max_len",
		"eventbus.yaml:11: redis.consumer.nack_resend_delay: renamed to redis.consumer.nack_delay",
	}, strings.Split(err.Error(), "\n"))
}

func TestIDBefore(t *testing.T) {
	assert.Equal(t, "1999-18446744073709551615", redisbackend.IDBefore(time.UnixMilli(2000)))
	assert.Equal(t, "0", redisbackend.IDBefore(time.Time{}))
}
