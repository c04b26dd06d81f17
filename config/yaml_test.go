package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/config"
)

// parseAndDecode runs what `config validate` runs: Parse, then the kafka section's Decode.
func parseAndDecode(doc string) error {
	cfg, err := config.Parse("eventbus.yaml", []byte(doc))
	if err != nil {
		return err
	}
	return cfg.Section("kafka").Decode(defaults())
}

// An alias inside its own anchor's value made the decoder recurse until the Go stack overflowed,
// which kills the process (no recover).
func TestCyclicAliasIsAnError(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"kafka: {brokers: &b [*b]}\n", "eventbus.yaml:1: kafka.brokers[0]: alias *b refers to a value that contains it"},
		{"kafka:\n  sasl: &s\n    username: *s\n", "eventbus.yaml:3: kafka.sasl.username: alias *s refers to a value that contains it"},
		{"kafka: &k\n  topics:\n    - *k\n", "eventbus.yaml:3: kafka.topics[0]: alias *k refers to a value that contains it"},
	} {
		err := parseAndDecode(tc.doc)
		require.ErrorIs(t, err, config.ErrInvalid, tc.doc)
		assert.True(t, strings.HasPrefix(err.Error(), tc.want), "got  %s\nwant %s", err, tc.want)
	}
}

// Nested aliases ("billion laughs") expand exponentially: nine levels of ten make 10^9 nodes
// from a file under 500 bytes. The loader refuses them once the expansion passes its bound, in
// far less time than expanding would take.
func TestAliasExpansionIsBounded(t *testing.T) {
	lol := "kafka:\n  settings:\n    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	for i := 1; i < 9; i++ {
		p := "*a" + string(rune('0'+i-1))
		lol += "    a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(p+", ", 9) + p + "]\n"
	}
	lol += "  brokers: *a8\n"
	require.Less(t, len(lol), 1000)

	start := time.Now()
	err := parseAndDecode(lol)
	elapsed := time.Since(start)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Regexp(t, `^eventbus\.yaml:\d+: kafka\.settings\.a\d\[\d\]: aliases expand to more than 10000 values`, err.Error())
	t.Logf("refused in %s: %v", elapsed, err)

	// A few aliases, the way people share a block, are fine.
	require.NoError(t, parseAndDecode("kafka:\n  brokers: &b [k1:9092, k2:9092]\n  topics:\n    - &t {name: a, partitions: 3}\n    - *t\n"))
}

// A second document used to be ignored silently: its settings never took effect.
func TestSecondDocumentIsAnError(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"backend: kafka\nkafka:\n  brokers: [k1:9092]\n---\nbackend: redis\n", "eventbus.yaml:4: a second YAML document starts here"},
		{"backend: kafka\n---\n", "eventbus.yaml:2: a second YAML document starts here"},
		{"---\n---\nbackend: redis\n", "eventbus.yaml:2: a second YAML document starts here"},
		{"backend: kafka\n---\n[\n", "eventbus.yaml:4: did not find expected node content"},
	} {
		_, err := config.Parse("eventbus.yaml", []byte(tc.doc))
		require.ErrorIs(t, err, config.ErrInvalid, tc.doc)
		assert.True(t, strings.HasPrefix(err.Error(), tc.want), "got  %s\nwant %s", err, tc.want)
	}
	// An explicit start and end of the one document are fine.
	_, err := config.Parse("eventbus.yaml", []byte("---\nbackend: kafka\n...\n"))
	require.NoError(t, err)
}
