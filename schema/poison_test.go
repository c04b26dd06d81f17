package schema_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
	"github.com/eventbus-go/eventbus/schema"
)

// Records that cannot be read with their schema go to the poison topic, unretried, with the
// reason: one not in the registry's framing (marked by the subscriber) and one whose Avro is
// cut short (refused by DecodeData in the handler).
func TestUnreadableRecordsArePoisoned(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg := startRegistry(t)
	topic := "enrollment-" + watermill.NewShortUUID()
	client, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)
	ver, err := loadCatalog(t).Latest(enrollmentCreated)
	require.NoError(t, err)
	id, err := client.Register(context.Background(), topic+"-"+enrollmentCreated+".CloudEvent", ver.Text)
	require.NoError(t, err)
	value := handBuiltEnrollment()
	produceRecord(t, addr, topic, nil, []byte(`{"not": "avro"}`), openEdXHeaders("evt-unframed"))
	produceRecord(t, addr, topic, nil, schema.Frame(id, value[:len(value)-4]), openEdXHeaders("evt-truncated"))

	b, err := schema.Open(context.Background(), kafkaOpenEdXConfig(t, addr, reg.URL(), ""), bus.WithLogger(brokertest.Logger()),
		bus.WithConsumerGroup("g-"+topic), bus.WithStartFrom(bus.StartOldest))
	require.NoError(t, err)
	defer b.Close()
	rc := router.DefaultConfig()
	rc.CloseTimeout = 10 * time.Second
	r, err := router.New(b, rc)
	require.NoError(t, err)
	handled := make(chan string, 10)
	r.AddConsumerHandler("enrollments", topic, b.Subscriber, func(m *message.Message) error {
		handled <- m.UUID
		ev, err := bus.ParseEvent(m)
		if err != nil {
			return err
		}
		var v enrollmentCreatedData
		return ev.DecodeData(b.Codec(), &v)
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	defer func() {
		_ = r.Close()
		<-done
	}()

	// The poison topic read as raw bytes: a bus without the schema layer.
	raw, err := bus.OpenConfig(context.Background(), "kafka", brokertest.KafkaConfig(addr, "reader-"+topic, 0, 1), bus.WithLogger(brokertest.Logger()), bus.WithStartFrom(bus.StartOldest))
	require.NoError(t, err)
	defer raw.Close()
	msgs, err := raw.Subscriber.Subscribe(context.Background(), topic+".poison")
	require.NoError(t, err)
	got := map[string]middleware.Provenance{}
	for len(got) < 2 {
		m := receive(t, msgs)
		m.Ack()
		p, err := middleware.ParseProvenance(m)
		require.NoError(t, err)
		got[m.UUID] = p
	}
	assert.Equal(t, middleware.ReasonInvalid, got["evt-unframed"].Reason)
	assert.Contains(t, got["evt-unframed"].Error, "schema registry's framing")
	assert.Equal(t, 0, got["evt-unframed"].Attempts, "never handed to the handler")
	assert.Equal(t, middleware.ReasonInvalid, got["evt-truncated"].Reason)
	assert.Contains(t, got["evt-truncated"].Error, "does not decode")
	assert.Equal(t, 1, got["evt-truncated"].Attempts, "not retried")
	assert.Equal(t, "evt-truncated", <-handled)
}
