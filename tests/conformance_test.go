// Package tests runs the conformance suite (bus/bustest) against every backend and the
// configurations that change what a backend declares, over real connections: Kafka on an
// embedded broker, Redis and RabbitMQ on the brokers scripts/brokers.sh keeps running.
package tests

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/bustest"
	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/internal/brokertest"
	"github.com/eventbus-go/eventbus/internal/conformance"
)

// variant is one backend configuration the suite runs against: a column of README's
// capability matrix. yaml returns the config file, starting any broker the test needs.
type variant struct {
	name string
	yaml func(t *testing.T) string
	opts []bus.Option
	// kafkaRestart: the variant runs on an embedded Kafka broker that keeps its data on disk,
	// which the Persistence check restarts.
	kafkaRestart bool
}

// Config keys appear only here (and in brokertest.KafkaYAML), so that renaming one touches
// few lines.
var variants = []variant{
	{name: "kafka", kafkaRestart: true},
	{name: "kafka (max_in_flight 16)", kafkaRestart: true, opts: []bus.Option{bus.WithMaxInFlight(16)}},
	{name: "redis", yaml: redisYAML},
	{name: "redis (max_in_flight 16)", yaml: redisYAML, opts: []bus.Option{bus.WithMaxInFlight(16)}},
	{name: "rabbitmq (quorum)", yaml: rabbitYAML("")},
	{name: "rabbitmq (single active consumer)", yaml: rabbitYAML("  queue: {single_active_consumer: true}\n")},
	{name: "rabbitmq (stream)", yaml: rabbitYAML("  queue: {type: stream}\n")},
	{name: "rabbitmq (max_in_flight 16)", yaml: rabbitYAML("  consumer: {max_in_flight: 16}\n")},
}

// restartableKafka starts an embedded Kafka broker that keeps its data in a directory, and
// returns its config file and a hook that closes it and starts it again on the same port and
// directory.
func restartableKafka(t *testing.T) (string, func(context.Context) error) {
	b := brokertest.StartRestartableKafka(t)
	return "backend: kafka\n" + brokertest.KafkaYAML(b.Addr()), func(context.Context) error { return b.Restart() }
}

func redisYAML(t *testing.T) string {
	brokertest.Redis(t)
	return "backend: redis\nredis:\n  addrs: [" + brokertest.RedisAddr + "]\n  consumer: {nack_delay: 20ms}\n"
}

func rabbitYAML(extra string) func(t *testing.T) string {
	return func(t *testing.T) string {
		return "backend: rabbitmq\nrabbitmq:\n  vhost: " + brokertest.RabbitMQVhost(t) + "\n" + extra
	}
}

var updateMatrix = flag.Bool("update-matrix", false, "rewrite README.md's capability matrix from this run (make matrix)")

// TestConformance runs the suite on every variant, then holds README.md's capability matrix to
// what the run showed: when every check of every variant ran, the table between the markers
// must be the one this run computes (make matrix rewrites it).
func TestConformance(t *testing.T) {
	var all []bustest.Result
	complete := true
	for _, v := range variants {
		var results []bustest.Result
		t.Run(v.name, func(t *testing.T) {
			var doc string
			var restart func(context.Context) error
			if v.kafkaRestart {
				doc, restart = restartableKafka(t)
			} else {
				doc = v.yaml(t)
			}
			cfg, err := config.Parse("conformance.yaml", []byte(doc))
			require.NoError(t, err)
			h, err := conformance.Harness(cfg, conformance.Options{Name: v.name, BusOptions: v.opts, Logger: brokertest.Logger()})
			require.NoError(t, err)
			h.Restart = restart
			results = bustest.Run(t, h)
		})
		all = append(all, results...)
		complete = complete && len(results) == len(bustest.Checks())
	}
	if !complete {
		t.Log("not every check of every variant ran (-run, -short or a failure): README's matrix is not compared")
		return
	}
	checkMatrix(t, bustest.Matrix(all))
}

const (
	matrixStart = "<!-- matrix:start (make matrix writes this table from a conformance run) -->\n"
	matrixEnd   = "<!-- matrix:end -->"
)

// checkMatrix compares README.md's matrix with table, or rewrites it under -update-matrix.
func checkMatrix(t *testing.T, table string) {
	const readme = "../README.md"
	raw, err := os.ReadFile(readme)
	require.NoError(t, err)
	doc := string(raw)
	i, j := strings.Index(doc, matrixStart), strings.Index(doc, matrixEnd)
	require.True(t, i >= 0 && j > i, "README.md has no %q ... %q markers", strings.TrimSpace(matrixStart), matrixEnd)
	current := doc[i+len(matrixStart) : j]
	if *updateMatrix {
		doc = doc[:i+len(matrixStart)] + table + doc[j:]
		require.NoError(t, os.WriteFile(readme, []byte(doc), 0o644))
		t.Logf("README.md's capability matrix rewritten:\n%s", table)
		return
	}
	require.Equal(t, table, current, "README.md's capability matrix differs from what this run shows: run make matrix, and look into any capability that changed")
}
