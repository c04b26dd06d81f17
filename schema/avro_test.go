package schema_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/schema"
)

// The Open edX catalog shipped with the package.
const openedxCatalog = "catalog/openedx"

const enrollmentCreated = "org.openedx.learning.course.enrollment.created.v1"

// Go types for COURSE_ENROLLMENT_CREATED's data, as a service would declare them.
type userPII struct {
	Username string `avro:"username" json:"username"`
	Email    string `avro:"email" json:"email"`
	Name     string `avro:"name" json:"name"`
}

type user struct {
	ID       int64   `avro:"id" json:"id"`
	IsActive bool    `avro:"is_active" json:"is_active"`
	PII      userPII `avro:"pii" json:"pii"`
}

type course struct {
	CourseKey   string  `avro:"course_key" json:"course_key"`
	DisplayName string  `avro:"display_name" json:"display_name"`
	Start       *string `avro:"start" json:"start"`
	End         *string `avro:"end" json:"end"`
}

type enrollment struct {
	User         user   `avro:"user" json:"user"`
	Course       course `avro:"course" json:"course"`
	Mode         string `avro:"mode" json:"mode"`
	IsActive     bool   `avro:"is_active" json:"is_active"`
	CreationDate string `avro:"creation_date" json:"creation_date"`
	CreatedBy    *user  `avro:"created_by" json:"created_by"`
}

type enrollmentCreatedData struct {
	Enrollment enrollment `avro:"enrollment" json:"enrollment"`
}

func sampleEnrollment() enrollmentCreatedData {
	start := "2026-01-05T00:00:00+00:00"
	return enrollmentCreatedData{Enrollment: enrollment{
		User:         user{ID: 42, IsActive: true, PII: userPII{Username: "ada", Email: "ada@example.org", Name: "Ada L."}},
		Course:       course{CourseKey: "course-v1:edX+DemoX+Demo_Course", DisplayName: "Demo", Start: &start},
		Mode:         "audit",
		IsActive:     true,
		CreationDate: "2026-12-01T10:00:00.123456+00:00",
	}}
}

func loadCatalog(t *testing.T) *schema.Catalog {
	t.Helper()
	c, err := schema.LoadCatalog(openedxCatalog)
	require.NoError(t, err)
	return c
}

func TestCatalogLoadsTheShippedOpenEdXSchemas(t *testing.T) {
	c := loadCatalog(t)
	assert.Equal(t, []string{
		"org.openedx.content_authoring.course.catalog_info.changed.v1",
		"org.openedx.learning.certificate.created.v1",
		enrollmentCreated,
	}, c.Types())
	v, err := c.Latest(enrollmentCreated)
	require.NoError(t, err)
	assert.Equal(t, 1, v.Number)
	_, err = c.Latest("org.example.nope.v1")
	assert.ErrorIs(t, err, schema.ErrUnknownEventType)
}

func TestCatalogRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.v1", "1.avsc"), `{"type":"record","name":"R","fields":[{"name":"x","type":"nope"}]}`)
	_, err := schema.LoadCatalog(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join("a.v1", "1.avsc"))

	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "a.v1", "2.avsc"), `"string"`)
	_, err = schema.LoadCatalog(dir)
	require.ErrorContains(t, err, "version 2 follows version 0")
}

func TestCodecRoundTripsStructsAndMaps(t *testing.T) {
	codec := schema.NewCodec(loadCatalog(t))
	in := sampleEnrollment()
	data, err := codec.MarshalEvent(enrollmentCreated, in)
	require.NoError(t, err)

	var out enrollmentCreatedData
	require.NoError(t, codec.UnmarshalEvent(enrollmentCreated, data, &out))
	assert.Equal(t, in, out)

	var m map[string]any
	require.NoError(t, codec.UnmarshalEvent(enrollmentCreated, data, &m))
	enr := m["enrollment"].(map[string]any)
	assert.Equal(t, "audit", enr["mode"])
	assert.Equal(t, int64(42), enr["user"].(map[string]any)["id"])

	// A map encodes to the same bytes as the struct.
	again, err := codec.MarshalEvent(enrollmentCreated, m)
	require.NoError(t, err)
	assert.Equal(t, data, again)
}

func TestCodecRefusesDataThatDoesNotMatchItsSchema(t *testing.T) {
	codec := schema.NewCodec(loadCatalog(t))
	bad := map[string]any{"enrollment": map[string]any{
		"user":   map[string]any{"id": int64(1), "pii": map[string]any{"username": "u", "email": "e", "name": "n"}},
		"course": map[string]any{"course_key": "k", "display_name": "d"},
		"mode":   "audit", "is_active": true, "creation_date": "2026-12-01T10:00:00+00:00",
	}}
	_, err := bus.NewMessage(bus.Event{Type: enrollmentCreated, Source: "test", Data: bad}, codec)
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "is_active", "the error names the missing field")
	assert.Contains(t, err.Error(), "user", "the error names the path to it")

	_, err = bus.NewMessage(bus.Event{Type: "org.example.unknown.v1", Source: "test", Data: bad}, codec)
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.ErrorIs(t, err, schema.ErrUnknownEventType)
}

func TestDecodeDataRefusesBadAvroAsInvalidEvent(t *testing.T) {
	codec := schema.NewCodec(loadCatalog(t))
	good, err := codec.MarshalEvent(enrollmentCreated, sampleEnrollment())
	require.NoError(t, err)
	for name, payload := range map[string][]byte{
		"truncated": good[:len(good)-3],
		"trailing":  append(append([]byte{}, good...), 7),
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			msg, err := bus.NewMessage(bus.Event{Type: enrollmentCreated, Source: "test", Data: payload}, codec)
			require.NoError(t, err)
			ev, err := bus.ParseEvent(msg)
			require.NoError(t, err)
			var out enrollmentCreatedData
			err = ev.DecodeData(codec, &out)
			assert.ErrorIs(t, err, bus.ErrInvalidEvent)
		})
	}
}

// python3Avro returns the interpreter with Apache Avro's Python library, or skips.
func python3Avro(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import avro.io, avro.schema").Run(); err != nil {
		t.Skipf("needs %s with Apache Avro's Python library (apt-get install -y python3-avro; scripts/test.sh installs it): %v", py, err)
	}
	return py
}

func runPython(t *testing.T, py, mode, schemaFile, stdin string) string {
	t.Helper()
	cmd := exec.Command(py, "testdata/avro_interop.py", mode, schemaFile)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	return string(out)
}

// Bytes written by an independent Avro implementation decode with ours, and ours with it.
func TestInteropWithApacheAvroPython(t *testing.T) {
	py := python3Avro(t)
	cat := loadCatalog(t)
	codec := schema.NewCodec(cat)
	for _, eventType := range cat.Types() {
		t.Run(eventType, func(t *testing.T) {
			ver, err := cat.Latest(eventType)
			require.NoError(t, err)
			datum := sampleDatum(t, eventType)

			// Python writes, we read.
			hexed := runPython(t, py, "write", ver.File, datum)
			pyBytes, err := hex.DecodeString(hexed)
			require.NoError(t, err)
			var got map[string]any
			require.NoError(t, codec.UnmarshalEvent(eventType, pyBytes, &got))
			assertSameJSON(t, datum, got)

			// We write, Python reads; and both write the same bytes.
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(datum), &m))
			ours, err := codec.MarshalEvent(eventType, jsonToAvroGeneric(t, eventType, m))
			require.NoError(t, err)
			assert.Equal(t, pyBytes, ours)
			assertSameJSON(t, datum, json.RawMessage(runPython(t, py, "read", ver.File, hex.EncodeToString(ours))))
		})
	}
}

// sampleDatum returns a JSON datum of the event type, in the shape Python's avro library takes
// (unions as plain values).
func sampleDatum(t *testing.T, eventType string) string {
	switch eventType {
	case enrollmentCreated:
		b, err := json.Marshal(sampleEnrollment())
		require.NoError(t, err)
		return string(b)
	case "org.openedx.learning.certificate.created.v1":
		return `{"certificate": {"user": {"id": 7, "is_active": true, "pii": {"username": "grace", "email": "g@example.org", "name": "Grace H."}},
			"course": {"course_key": "course-v1:edX+CS101+2026", "display_name": "CS101", "start": null, "end": "2026-06-30T00:00:00+00:00"},
			"mode": "verified", "grade": "0.93", "download_url": "https://example.org/cert/1", "name": "Grace H.",
			"current_status": "downloadable", "previous_status": ""}}`
	case "org.openedx.content_authoring.course.catalog_info.changed.v1":
		return `{"catalog_info": {"course_key": "course-v1:edX+CS101+2026", "name": "CS101",
			"schedule_data": {"start": "2026-01-05T00:00:00+00:00", "pacing": "instructor", "end": null, "enrollment_start": null, "enrollment_end": "2026-02-01T00:00:00+00:00"},
			"hidden": false, "invitation_only": true}}`
	}
	t.Fatalf("no sample datum for %s", eventType)
	return ""
}

// jsonToAvroGeneric turns JSON numbers into the Go integers hamba/avro expects for long
// fields: every number in these samples is a long.
func jsonToAvroGeneric(t *testing.T, _ string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonToAvroGeneric(t, "", e)
		}
		return x
	case float64:
		return int64(x)
	}
	return v
}

func assertSameJSON(t *testing.T, want string, got any) {
	t.Helper()
	b, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, want, string(b))
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
}

func TestFromJSONFollowsTheSchema(t *testing.T) {
	codec := schema.NewCodec(loadCatalog(t))
	data, err := json.Marshal(sampleEnrollment())
	require.NoError(t, err)
	v, err := codec.FromJSON(enrollmentCreated, data)
	require.NoError(t, err)
	got, err := codec.MarshalEvent(enrollmentCreated, v)
	require.NoError(t, err)
	want, err := codec.MarshalEvent(enrollmentCreated, sampleEnrollment())
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = codec.FromJSON(enrollmentCreated, []byte(`{"enrollment": {"user": {"id": "42"}}}`))
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "enrollment.user.id: want an integer, got a string")
	_, err = codec.FromJSON(enrollmentCreated, []byte(`{"enrollment": {}, "extra": 1}`))
	require.ErrorIs(t, err, bus.ErrInvalidEvent)
}
