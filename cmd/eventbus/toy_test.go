package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/eventbus-go/eventbus/internal/toydriver"
)

// A backend cmd/eventbus was not written for (the toy driver, registered by its import alone)
// gets the commands that need nothing of it beyond the driver contract, and a clear "not
// supported" from those that need an operator call it does not have: nothing in cmd names it.
func TestCLIOnABackendItDoesNotKnow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := writeFile(t, "eventbus.yaml", "backend: toy\n"+
		"bench: {payload_size: 16, messages: 50, producers: 1, batch: 1, consumers: 1, topics: 1, keys: 1, rounds: 1, timeout: 30s}\n")

	code, out, errOut := cli(t, ctx, "", "bench", "--config", cfg, "--raw", "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var rep struct {
		Backend    string            `json:"backend"`
		Durability map[string]string `json:"durability"`
		Results    []struct {
			Client    string `json:"client"`
			Published int64  `json:"published"`
			Unique    int64  `json:"unique"`
		} `json:"results"`
		Ratios []any `json:"ratios"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.Equal(t, "toy", rep.Backend)
	require.Len(t, rep.Results, 1, "the bus alone: bench has no raw client for the toy")
	assert.Equal(t, "eventbus", rep.Results[0].Client)
	assert.EqualValues(t, 50, rep.Results[0].Unique)
	assert.Empty(t, rep.Ratios)
	assert.Contains(t, rep.Durability["raw"], "no raw client for backend toy")

	for _, args := range [][]string{
		{"dlq", "list", "--topic", "invoices"},
		{"status", "--topic", "invoices"},
		{"replay", "--topic", "invoices", "--group", "billing", "--to", "2026-01-01T00:00:00Z"},
		{"consume", "--topic", "invoices", "--exit-at-end"},
	} {
		code, _, errOut := cli(t, ctx, "", append(args, "--config", cfg)...)
		assert.Equal(t, 1, code, "%v: %s", args, errOut)
		assert.Contains(t, errOut, "not supported", args)
		assert.Contains(t, errOut, "toy", args)
	}
}
