package schema_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/schema"
)

// copyCatalog copies the shipped catalog into a temporary directory the test may change.
func copyCatalog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(openedxCatalog)))
	return dir
}

// addVersion writes version n of the enrollment schema, made from version 1 by replacing old
// with new in its text.
func addVersion(t *testing.T, dir string, n int, old, new string) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(dir, enrollmentCreated, "1.avsc"))
	require.NoError(t, err)
	changed := strings.Replace(string(text), old, new, 1)
	require.NotEqual(t, string(text), changed, "the replacement must change the schema")
	require.NoError(t, os.WriteFile(filepath.Join(dir, enrollmentCreated, fmt.Sprintf("%d.avsc", n)), []byte(changed), 0o644))
}

const modeField = `{"name": "mode", "type": "string"},`

func TestShippedCatalogIsCompatible(t *testing.T) {
	c := loadCatalog(t)
	assert.Empty(t, schema.CheckCatalog(c, schema.Full))
}

func TestCheckCatalogNamesTheIncompatibleField(t *testing.T) {
	dir := copyCatalog(t)
	// Version 2 adds a field with a default: compatible both ways.
	addVersion(t, dir, 2, modeField, modeField+`
          {"name": "external_id", "type": ["null", "string"], "default": null},`)
	c, err := schema.LoadCatalog(dir)
	require.NoError(t, err)
	require.Empty(t, schema.CheckCatalog(c, schema.Full))

	// Version 3 adds a field without a default: not backward compatible.
	text, err := os.ReadFile(filepath.Join(dir, enrollmentCreated, "2.avsc"))
	require.NoError(t, err)
	v3 := strings.Replace(string(text), modeField, modeField+`
          {"name": "grade", "type": "string"},`, 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, enrollmentCreated, "3.avsc"), []byte(v3), 0o644))
	c, err = schema.LoadCatalog(dir)
	require.NoError(t, err)

	problems := schema.CheckCatalog(c, schema.Backward)
	require.Len(t, problems, 1)
	assert.ErrorIs(t, problems[0], schema.ErrIncompatible)
	assert.Equal(t, enrollmentCreated, problems[0].EventType)
	assert.Contains(t, problems[0].Error(), "field enrollment.grade")
	assert.Contains(t, problems[0].Error(), "version 2 -> version 3")
	// Forward only: an old reader ignores the new field.
	assert.Empty(t, schema.CheckCatalog(c, schema.Forward))
}

func TestCheckCatalogCatchesATypeChange(t *testing.T) {
	dir := copyCatalog(t)
	addVersion(t, dir, 2, `{"name": "id", "type": "long"}`, `{"name": "id", "type": "string"}`)
	c, err := schema.LoadCatalog(dir)
	require.NoError(t, err)
	problems := schema.CheckCatalog(c, schema.Backward)
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0].Reason, "field enrollment.user.id")
}

func TestCheckAgainstRegistry(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	client, err := schema.NewRegistry(reg.URL(), schema.RegistryOptions{})
	require.NoError(t, err)
	registered, err := schema.RegisterCatalog(ctx, loadCatalog(t), client, "lms")
	require.NoError(t, err)
	assert.Len(t, registered, 4, "three event types and the key")

	dir := copyCatalog(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, enrollmentCreated, "2.avsc"), []byte(strings.Replace(mustRead(t, filepath.Join(dir, enrollmentCreated, "1.avsc")), `{"name": "id", "type": "long"}`, `{"name": "id", "type": "string"}`, 1)), 0o644))
	c, err := schema.LoadCatalog(dir)
	require.NoError(t, err)
	compared, problems, err := schema.CheckAgainstRegistry(ctx, c, client, schema.Backward)
	require.NoError(t, err)
	assert.Len(t, compared, 3)
	require.Len(t, problems, 1)
	assert.Contains(t, problems[0].Error(), "subject lms-"+enrollmentCreated+".CloudEvent version 1")
	assert.Contains(t, problems[0].Reason, "field enrollment.user.id")
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
