package main

import (
	"context"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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

// TestReadmeSnippetBuilds compiles the Go code of README.md's "Using it in a service" as a
// newcomer pastes it into a main package. It is written to a directory inside the module (so
// that it imports this module's packages without a replace directive) whose name starts with
// "_", so that ./... never sees it, and removed afterwards.
func TestReadmeSnippetBuilds(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, found := strings.Cut(string(readme), "## Using it in a service\n")
	require.True(t, found, `README.md has no "## Using it in a service" section`)
	_, code, found := strings.Cut(section, "```go\n")
	require.True(t, found, "no Go code block in the section")
	code, _, found = strings.Cut(code, "\n```")
	require.True(t, found, "the Go code block is not closed")
	require.Contains(t, code, "package main")

	dir, err := os.MkdirTemp("../../examples", "_readme-snippet-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(code+"\n"), 0o600))
	out, err := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.ToSlash(dir)).CombinedOutput()
	require.NoError(t, err, "README.md's service snippet does not build:\n%s", out)
	out, err = exec.Command("go", "vet", "./"+filepath.ToSlash(dir)).CombinedOutput()
	require.NoError(t, err, "go vet on README.md's service snippet:\n%s", out)
	formatted, err := format.Source([]byte(code + "\n"))
	require.NoError(t, err)
	assert.Equal(t, string(formatted), code+"\n", "README.md's service snippet is not gofmt-formatted")
}
