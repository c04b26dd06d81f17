package schema_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/eventbus-go/eventbus/backends/kafka"
	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/schema"
	"github.com/eventbus-go/eventbus/schema/registrytest"
)

// openEdXKeySchema is the key schema Open edX's producer registers: the key field's entry in
// the value schema, json.dumps'ed with sorted keys.
const openEdXKeySchema = `{"name": "course_key", "type": "string"}`

// Avro binary, written by hand: a long or int is a zigzag varint, a string its length then
// its bytes, a boolean one byte, a union the branch index then the value.
func avroLong(n int64) []byte { return binary.AppendVarint(nil, n) }

func avroString(s string) []byte { return append(avroLong(int64(len(s))), s...) }

func avroBool(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// handBuiltEnrollment is sampleEnrollment() in Avro binary, byte by byte, as Open edX's
// producer writes it (fastavro.schemaless_writer with the generated schema).
func handBuiltEnrollment() []byte {
	return cat(
		avroLong(42), avroBool(true), avroString("ada"), avroString("ada@example.org"), avroString("Ada L."), // user
		avroString("course-v1:edX+DemoX+Demo_Course"), avroString("Demo"), // course key, display name
		avroLong(1), avroString("2026-01-05T00:00:00+00:00"), // start: union branch 1 (string)
		avroLong(0), // end: union branch 0 (null)
		avroString("audit"), avroBool(true), avroString("2026-12-01T10:00:00.123456+00:00"),
		avroLong(0), // created_by: null
	)
}

func catalogDir(t *testing.T) string {
	dir, err := filepath.Abs(openedxCatalog)
	require.NoError(t, err)
	return dir
}

// kafkaOpenEdXConfig writes a config file for the embedded broker at addr in openedx mode with
// the registry at registryURL.
func kafkaOpenEdXConfig(t *testing.T, addr, registryURL string, extra string) *config.Config {
	t.Helper()
	text := "backend: kafka\n" + brokertest.KafkaYAML(addr) +
		"schemas:\n  mode: openedx\n  catalog: " + catalogDir(t) + "\n  registry:\n    url: " + registryURL + "\n" + extra
	path := filepath.Join(t.TempDir(), "eventbus.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	cfg, err := config.Load(path)
	require.NoError(t, err)
	return cfg
}

func startRegistry(t *testing.T) *registrytest.Registry {
	t.Helper()
	reg, err := registrytest.Start()
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

// receive is bustest.Receive with a deadline of 30s.
func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return bustest.Receive(t, ctx, msgs)
}

// Publishing in openedx mode on Kafka writes Open edX's record layout (framed value and key,
// its headers) with the schemas registered on first publish, and reads it back.
func TestKafkaOpenEdXModeAgainstEmbeddedRegistry(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg := startRegistry(t)
	cfg := kafkaOpenEdXConfig(t, addr, reg.URL(), "")
	ctx := context.Background()
	topic := "learning-course-enrollment-" + watermill.NewShortUUID()

	b, err := schema.Open(ctx, cfg, bus.WithLogger(brokertest.Logger()), bus.WithConsumerGroup("g-"+topic), bus.WithStartFrom(bus.StartOldest))
	require.NoError(t, err)
	defer b.Close()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)

	const key = "course-v1:edX+DemoX+Demo_Course"
	require.NoError(t, b.Publish(ctx, topic, bus.Event{Type: enrollmentCreated, Source: "openedx/lms/web", Key: key, Data: sampleEnrollment()}))

	msg := receive(t, msgs)
	ev, err := bus.ParseEvent(msg)
	require.NoError(t, err)
	msg.Ack()
	assert.Equal(t, key, ev.Key)
	var got enrollmentCreatedData
	require.NoError(t, ev.DecodeData(b.Codec(), &got))
	assert.Equal(t, sampleEnrollment(), got)

	// The schemas are registered under Open edX's TopicRecordName subjects.
	assert.Equal(t, []string{topic + "-" + enrollmentCreated + ".CloudEvent", topic + "-string"}, reg.Subjects())

	// The record as it is on the broker, read without the schema layer.
	raw := rawRecord(t, addr, topic)
	client, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)
	valueID, err := client.Latest(ctx, topic+"-"+enrollmentCreated+".CloudEvent")
	require.NoError(t, err)
	keyID, err := client.Latest(ctx, topic+"-string")
	require.NoError(t, err)
	assert.Equal(t, schema.Frame(valueID.ID, handBuiltEnrollment()), raw.Value, "value: magic byte, schema id, Avro")
	assert.Equal(t, schema.Frame(keyID.ID, avroString(key)), raw.Key, "key: magic byte, schema id, Avro string")
	headers := map[string]string{}
	for _, h := range raw.Headers {
		headers[string(h.Key)] = string(h.Value)
	}
	for _, h := range []string{"ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_minorversion", "sourcehost"} {
		assert.NotEmpty(t, headers[h], "header %s", h)
	}
	assert.Equal(t, "application/avro", headers["content-type"])
	assert.Equal(t, "application/avro", headers["ce_datacontenttype"])
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`, headers["ce_time"], "ce_time as Python's isoformat()")
}

// rawRecord reads the first record of topic with a bare Sarama consumer.
func rawRecord(t *testing.T, addr, topic string) *sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, sarama.NewConfig())
	require.NoError(t, err)
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	require.NoError(t, err)
	defer pc.Close()
	select {
	case rec := <-pc.Messages():
		return rec
	case <-time.After(30 * time.Second):
		t.Fatal("no record within 30s")
		return nil
	}
}

// produceOpenEdXRecord writes an enrollment record exactly as edx-event-bus-kafka does, built by
// hand: schemas registered as its serializers register them, framed value and key, its headers.
func produceOpenEdXRecord(t *testing.T, addr, registryURL, topic string) (id string) {
	t.Helper()
	ctx := context.Background()
	client, err := schema.NewRegistry(registryURL, schema.RegistryOptions{})
	require.NoError(t, err)
	text, err := os.ReadFile(filepath.Join(openedxCatalog, enrollmentCreated, "1.avsc"))
	require.NoError(t, err)
	valueID, err := client.Register(ctx, topic+"-"+enrollmentCreated+".CloudEvent", string(text))
	require.NoError(t, err)
	keyID, err := client.Register(ctx, topic+"-string", openEdXKeySchema)
	require.NoError(t, err)

	id = watermill.NewUUID()
	produceRecord(t, addr, topic, schema.Frame(keyID, avroString("course-v1:edX+DemoX+Demo_Course")),
		schema.Frame(valueID, handBuiltEnrollment()), openEdXHeaders(id))
	return id
}

// openEdXHeaders are the headers edx-event-bus-kafka writes on an enrollment event.
func openEdXHeaders(id string) map[string]string {
	return map[string]string{
		"ce_specversion": "1.0", "content-type": "application/avro", "ce_datacontenttype": "application/avro",
		"ce_type": enrollmentCreated, "ce_id": id, "ce_source": "openedx/lms/web",
		"ce_time": "2026-12-01T10:00:00.123456+00:00", "ce_minorversion": "0",
		"sourcehost": "edx.devstack.lms", "sourcelib": "9.5.1",
	}
}

// produceRecord writes one record with a bare Sarama producer.
func produceRecord(t *testing.T, addr, topic string, key, value []byte, headers map[string]string) {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer([]string{addr}, sc)
	require.NoError(t, err)
	defer p.Close()
	rec := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(value)}
	if key != nil {
		rec.Key = sarama.ByteEncoder(key)
	}
	for k, v := range headers {
		rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	_, _, err = p.SendMessage(rec)
	require.NoError(t, err)
}

// A record in Open edX's layout, built byte by byte, is consumed and decoded.
func TestKafkaConsumesAHandBuiltOpenEdXRecord(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg := startRegistry(t)
	topic := "learning-course-enrollment-" + watermill.NewShortUUID()
	id := produceOpenEdXRecord(t, addr, reg.URL(), topic)

	ctx := context.Background()
	b, err := schema.Open(ctx, kafkaOpenEdXConfig(t, addr, reg.URL(), ""), bus.WithLogger(brokertest.Logger()), bus.WithConsumerGroup("g-"+topic), bus.WithStartFrom(bus.StartOldest))
	require.NoError(t, err)
	defer b.Close()
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	msg := receive(t, msgs)
	msg.Ack()
	ev, err := bus.ParseEvent(msg)
	require.NoError(t, err)
	assert.Equal(t, id, ev.ID)
	assert.Equal(t, "course-v1:edX+DemoX+Demo_Course", ev.Key)
	assert.Equal(t, "9.5.1", ev.Metadata["sourcelib"])
	assert.Empty(t, msg.Metadata.Get(bus.HeaderInvalidReason))
	var got enrollmentCreatedData
	require.NoError(t, ev.DecodeData(b.Codec(), &got))
	assert.Equal(t, sampleEnrollment(), got)
}

// With auto_register off, a schema the registry lacks is refused at publish.
func TestKafkaOpenEdXRefusesUnregisteredSchemaWithoutAutoRegister(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg := startRegistry(t)
	cfg := kafkaOpenEdXConfig(t, addr, reg.URL(), "    auto_register: false\n")
	b, err := schema.Open(context.Background(), cfg, bus.WithLogger(brokertest.Logger()))
	require.NoError(t, err)
	defer b.Close()
	err = b.Publish(context.Background(), "t-"+watermill.NewShortUUID(), bus.Event{Type: enrollmentCreated, Source: "s", Data: sampleEnrollment()})
	require.ErrorIs(t, err, schema.ErrNotRegistered)
	assert.Contains(t, err.Error(), "auto_register is false")
	assert.Empty(t, reg.Subjects())
}

// subscribeOpenEdX opens a bus in openedx mode and subscribes to topic from the oldest record.
func subscribeOpenEdX(t *testing.T, addr, registryURL, topic string) (*bus.Bus, <-chan *message.Message) {
	t.Helper()
	ctx := context.Background()
	b, err := schema.Open(ctx, kafkaOpenEdXConfig(t, addr, registryURL, ""), bus.WithLogger(brokertest.Logger()), bus.WithConsumerGroup("g-"+topic), bus.WithStartFrom(bus.StartOldest))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	msgs, err := b.Subscriber.Subscribe(ctx, topic)
	require.NoError(t, err)
	return b, msgs
}

// A record written with an older schema (no created_by field) is resolved against the
// catalog's: the field takes its default.
func TestKafkaResolvesAnOlderWriterSchema(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg := startRegistry(t)
	topic := "enrollment-" + watermill.NewShortUUID()
	text, err := os.ReadFile(filepath.Join(openedxCatalog, enrollmentCreated, "1.avsc"))
	require.NoError(t, err)
	older := strings.Replace(string(text), `,
          {"name": "created_by", "type": ["null", "UserData"], "default": null}`, "", 1)
	require.NotEqual(t, string(text), older)
	client, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)
	id, err := client.Register(context.Background(), topic+"-"+enrollmentCreated+".CloudEvent", older)
	require.NoError(t, err)
	value := handBuiltEnrollment()
	produceRecord(t, addr, topic, nil, schema.Frame(id, value[:len(value)-1]), openEdXHeaders(watermill.NewUUID()))

	b, msgs := subscribeOpenEdX(t, addr, reg.URL(), topic)
	msg := receive(t, msgs)
	msg.Ack()
	require.Empty(t, msg.Metadata.Get(bus.HeaderInvalidReason))
	ev, err := bus.ParseEvent(msg)
	require.NoError(t, err)
	var got enrollmentCreatedData
	require.NoError(t, ev.DecodeData(b.Codec(), &got))
	assert.Equal(t, sampleEnrollment(), got)
}

// A record that is not in the registry's framing is delivered marked invalid, for the poison
// middleware, never dropped.
func TestKafkaMarksAnUnframedRecordInvalid(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg := startRegistry(t)
	topic := "enrollment-" + watermill.NewShortUUID()
	produceRecord(t, addr, topic, nil, []byte(`{"enrollment": {}}`), openEdXHeaders(watermill.NewUUID()))

	_, msgs := subscribeOpenEdX(t, addr, reg.URL(), topic)
	msg := receive(t, msgs)
	msg.Ack()
	assert.Contains(t, msg.Metadata.Get(bus.HeaderInvalidReason), "framing")
}
