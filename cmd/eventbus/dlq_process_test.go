package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/internal/brokertest"
)

// The dlq commands as a shell pipeline sees them: show writes JSON lines only to standard
// output (jq reads them), the summary goes to standard error, and failures end the process
// with a non-zero status.
func TestDLQAsAProcess(t *testing.T) {
	brokertest.Redis(t)
	bin := eventbusBinary(t)
	be := dlqBackend{name: "redis", topic: brokertest.RedisStream(t, "eventbus-test-dlq"),
		cfg: writeFile(t, "eventbus.yaml", redisCLIConfig+"  consumer_group: billing\n"+dlqRouterYAML)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	poisonRecords(t, ctx, be, 3)
	eventbus := func(args ...string) (int, string, string) {
		cmd := exec.CommandContext(ctx, bin, append(args, "--config", be.cfg)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), out.String(), errOut.String()
		}
		require.NoError(t, err)
		return 0, out.String(), errOut.String()
	}

	code, out, errOut := eventbus("dlq", "show", "--topic", be.topic)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 3, out)
	for _, line := range lines {
		var rec dlqRecord
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "not a JSON line: %q", line)
		assert.Equal(t, "billing", rec.Group)
	}
	assert.True(t, strings.HasSuffix(errOut, "3 of 3 messages in "+be.topic+".poison selected\n"), errOut)

	code, out, errOut = eventbus("dlq", "list", "--topic", be.topic+"-typo")
	assert.Equal(t, 1, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "no such topic "+be.topic+"-typo")

	code, _, errOut = eventbus("dlq", "purge", "--topic", be.topic)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "pass --all")
	code, _, errOut = eventbus("dlq", "purge", "--topic", be.topic, "--all")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "purged 3 of 3 messages")
}
