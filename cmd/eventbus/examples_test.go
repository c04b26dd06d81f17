package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExampleConfigsValidate keeps the README's and examples/config's files true: each one
// validates, given a value for every ${VAR} it references.
func TestExampleConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("../../examples/config/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	ref := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range ref.FindAllStringSubmatch(string(data), -1) {
			t.Setenv(m[1], "example-value")
		}
		code, out, errOut := cli(t, context.Background(), "", "config", "validate", "--config", f)
		assert.Equal(t, 0, code, "%s: %s", f, errOut)
		assert.Contains(t, out, "valid", f)
	}
}
