package brokertest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// SyncBuffer is a bytes.Buffer that a test reads while other goroutines write to it: a
// logger's handler, a child process's stderr.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ChildMain makes the test binary double as a child process: in TestMain, when the
// environment variable env is set, it exits with what child returns given its value;
// otherwise it runs the tests. StartChild starts such a child.
func ChildMain(m *testing.M, env string, child func(spec string) int) {
	if spec := os.Getenv(env); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(m.Run())
}

// StartChild runs the test binary as a child process (no tests, env=spec in its environment,
// see ChildMain) and calls line with each line it writes on stdout, on a goroutine of its
// own. The returned channel is closed once that output has been read to its end (the child
// exited): cmd.Wait closes the pipe, so lines still in it would be lost if the caller waited
// first. The child's stderr is the test's; it is killed when the test ends.
func StartChild(t testing.TB, env, spec string, line func(string)) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+spec)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	eof := make(chan struct{})
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-eof; _ = cmd.Wait() })
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line(sc.Text())
		}
	}()
	return cmd, eof
}

// BuildBinary builds the main package in the current directory (an example's, a command's)
// into a temporary directory, removed when the test ends, and returns the binary's path.
func BuildBinary(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}
