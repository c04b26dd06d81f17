package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/schema"
	"github.com/eventbus-go/eventbus/schema/registrytest"
)

const (
	openedxCatalog    = "../../schema/catalog/openedx"
	enrollmentCreated = "org.openedx.learning.course.enrollment.created.v1"
	demoCourse        = "course-v1:edX+DemoX+Demo_Course"
)

// Avro binary by hand: zigzag varints for longs, length-prefixed strings, one byte booleans,
// union branch indexes.
func avroLong(n int64) []byte    { return binary.AppendVarint(nil, n) }
func avroString(s string) []byte { return append(avroLong(int64(len(s))), s...) }

// openEdXEnrollment is an enrollment event's data in Avro binary as Open edX writes it, byte by
// byte: user {id, is_active, pii {username, email, name}}, course {course_key, display_name,
// start (union), end (union)}, mode, is_active, creation_date, created_by (union).
func openEdXEnrollment() []byte {
	var b []byte
	for _, part := range [][]byte{
		avroLong(42), {1}, avroString("ada"), avroString("ada@example.org"), avroString("Ada L."),
		avroString(demoCourse), avroString("Demo"), avroLong(0), avroLong(0),
		avroString("audit"), {1}, avroString("2026-12-01T10:00:00.123456+00:00"), avroLong(0),
	} {
		b = append(b, part...)
	}
	return b
}

const wantEnrollmentJSON = `{"enrollment": {
	"user": {"id": 42, "is_active": true, "pii": {"username": "ada", "email": "ada@example.org", "name": "Ada L."}},
	"course": {"course_key": "course-v1:edX+DemoX+Demo_Course", "display_name": "Demo", "start": null, "end": null},
	"mode": "audit", "is_active": true, "creation_date": "2026-12-01T10:00:00.123456+00:00", "created_by": null}}`

func catalogPath(t *testing.T) string {
	p, err := filepath.Abs(openedxCatalog)
	require.NoError(t, err)
	return p
}

func TestSchemaCheckPassesOnTheShippedCatalog(t *testing.T) {
	code, out, errOut := cli(t, context.Background(), "", "schema", "check", "--catalog", openedxCatalog, "--level", "full")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "ok: 3 event types")
}

func TestSchemaCheckFailsOnAnIncompatibleChange(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(openedxCatalog)))
	v1, err := os.ReadFile(filepath.Join(dir, enrollmentCreated, "1.avsc"))
	require.NoError(t, err)
	v2 := strings.Replace(string(v1), `{"name": "mode", "type": "string"},`, `{"name": "mode", "type": "string"}, {"name": "grade", "type": "double"},`, 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, enrollmentCreated, "2.avsc"), []byte(v2), 0o644))

	code, _, errOut := cli(t, context.Background(), "", "schema", "check", "--catalog", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, enrollmentCreated+": version 1 -> version 2")
	assert.Contains(t, errOut, "field enrollment.grade")

	// Against the deployed catalog too: the new newest version is checked against the old one.
	code, _, errOut = cli(t, context.Background(), "", "schema", "check", "--catalog", dir, "--against", openedxCatalog)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "2 incompatible schema changes")
}

func TestSchemaRegisterThenCheckAgainstTheRegistry(t *testing.T) {
	reg, err := registrytest.Start()
	require.NoError(t, err)
	defer reg.Close()
	ctx := context.Background()
	code, out, errOut := cli(t, ctx, "", "schema", "register", "--catalog", openedxCatalog, "--topic", "lms", "--registry", reg.URL())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "lms-"+enrollmentCreated+".CloudEvent\tid ")
	assert.Contains(t, out, "lms-string\tid ")

	code, out, errOut = cli(t, ctx, "", "schema", "check", "--catalog", openedxCatalog, "--against", reg.URL())
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "against 3 subjects")
}

// A record built byte by byte in Open edX's Kafka layout (framed Avro key and value, its
// headers) is consumed and printed decoded by `eventbus consume`.
func TestConsumePrintsAHandBuiltOpenEdXKafkaRecord(t *testing.T) {
	addr := brokertest.StartKafka(t, 1)
	reg, err := registrytest.Start()
	require.NoError(t, err)
	defer reg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "learning-course-enrollment-" + watermill.NewShortUUID()

	// What edx-event-bus-kafka's serializers register and write.
	client, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)
	text, err := os.ReadFile(filepath.Join(openedxCatalog, enrollmentCreated, "1.avsc"))
	require.NoError(t, err)
	valueID, err := client.Register(ctx, topic+"-"+enrollmentCreated+".CloudEvent", string(text))
	require.NoError(t, err)
	keyID, err := client.Register(ctx, topic+"-string", `{"name": "course_key", "type": "string"}`)
	require.NoError(t, err)
	frame := func(id int, b []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), b...)
	}
	id := watermill.NewUUID()
	headers := map[string]string{
		"ce_specversion": "1.0", "content-type": "application/avro", "ce_datacontenttype": "application/avro",
		"ce_type": enrollmentCreated, "ce_id": id, "ce_source": "openedx/lms/web",
		"ce_time": "2026-12-01T10:00:00.123456+00:00", "ce_minorversion": "0",
		"sourcehost": "edx.devstack.lms", "sourcelib": "9.5.1",
	}
	rec := &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(frame(keyID, avroString(demoCourse))), Value: sarama.ByteEncoder(frame(valueID, openEdXEnrollment()))}
	for k, v := range headers {
		rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	sc := sarama.NewConfig()
	sc.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer([]string{addr}, sc)
	require.NoError(t, err)
	_, _, err = p.SendMessage(rec)
	require.NoError(t, err)
	require.NoError(t, p.Close())

	cfg := writeFile(t, "eventbus.yaml", "backend: kafka\n"+brokertest.KafkaYAML(addr)+
		"schemas:\n  mode: openedx\n  catalog: "+catalogPath(t)+"\n  registry: {url: "+reg.URL()+"}\n")
	code, out, errOut := cli(t, ctx, "", "consume", "--config", cfg, "--topic", topic, "--count", "1", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var got consumedEvent
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &got))
	assert.Equal(t, id, got.ID)
	assert.Equal(t, demoCourse, got.Key)
	assert.Equal(t, "9.5.1", got.Headers["sourcelib"])
	assert.JSONEq(t, wantEnrollmentJSON, string(got.Payload))
}

// An entry in Open edX's Redis layout (edx-event-bus-redis: its fields, event_data Avro without
// framing), built by hand, is consumed and printed decoded; and one published by `eventbus
// publish` in openedx mode carries the same event_data bytes.
func TestOpenEdXRedisEntryConsumedAndPublishedByTheCLI(t *testing.T) {
	c := brokertest.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "eventbus-test:" + watermill.NewShortUUID() + ":enrollment"
	t.Cleanup(func() { c.Del(context.Background(), topic) })
	id := watermill.NewUUID()
	require.NoError(t, c.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: map[string]any{
		"id": id, "type": enrollmentCreated, "source": "openedx/lms/web", "time": "2026-12-01T10:00:00.123456+00:00",
		"minorversion": "0", "sourcehost": "edx.devstack.lms", "sourcelib": "9.5.1", "event_data": openEdXEnrollment(),
	}}).Err())

	cfg := writeFile(t, "eventbus.yaml", redisCLIConfig+"schemas:\n  mode: openedx\n  catalog: "+catalogPath(t)+"\n")
	code, out, errOut := cli(t, ctx, "", "consume", "--config", cfg, "--topic", topic, "--from", "oldest", "--count", "1", "--timeout", "30s")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var got consumedEvent
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(out)), &got))
	assert.Equal(t, id, got.ID)
	assert.JSONEq(t, wantEnrollmentJSON, string(got.Payload))

	code, _, errOut = cli(t, ctx, "", "publish", "--config", cfg, "--topic", topic, "--type", enrollmentCreated,
		"--source", "openedx/lms/web", "--data", wantEnrollmentJSON)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	entries, err := c.XRange(ctx, topic, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, entries, 2)
	assert.Equal(t, string(openEdXEnrollment()), entries[1].Values["event_data"], "event_data byte for byte as Open edX writes it")
	for _, field := range []string{"id", "type", "source", "time", "minorversion", "sourcehost"} {
		assert.NotEmpty(t, entries[1].Values[field], "field %s, as edx-event-bus-redis writes it", field)
	}
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`, entries[1].Values["time"])

	// Data that does not match the schema is refused, naming the field.
	code, _, errOut = cli(t, ctx, "", "publish", "--config", cfg, "--topic", topic, "--type", enrollmentCreated,
		"--source", "openedx/lms/web", "--data", `{"enrollment": {"mode": 3}}`)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "enrollment")
}

// `eventbus dev --schema-registry` serves a registry beside the broker until interrupted.
func TestDevServesASchemaRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out brokertest.SyncBuffer
	var errOut bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"dev", "--port", "0", "--schema-registry", "127.0.0.1:0"}, strings.NewReader(""), &out, &errOut)
	}()
	url := regexp.MustCompile(`schema registry listening on (http://\S+)`)
	require.Eventually(t, func() bool { return url.MatchString(out.String()) }, 30*time.Second, 20*time.Millisecond)
	client, err := schema.NewRegistry(url.FindStringSubmatch(out.String())[1], schema.RegistryOptions{})
	require.NoError(t, err)
	_, err = client.Register(context.Background(), "t-string", `"string"`)
	require.NoError(t, err)
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop on cancel")
	}
}

// `config validate` checks the schemas: section strictly, naming the line and key.
func TestConfigValidateChecksTheSchemasSection(t *testing.T) {
	cfg := writeFile(t, "eventbus.yaml", "backend: kafka\nschemas:\n  mode: protobuf\n  catalgo: x\n")
	code, _, errOut := cli(t, context.Background(), "", "config", "validate", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "eventbus.yaml:4: schemas.catalgo: unknown key")
	assert.Contains(t, errOut, "eventbus.yaml:3: schemas.mode: \"protobuf\": want json, avro or openedx")
}
