package tests

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/config"
	_ "github.com/eventbus-go/eventbus/internal/toydriver"
	"github.com/eventbus-go/eventbus/middleware"
	"github.com/eventbus-go/eventbus/router"
)

// A backend is added without editing any file outside its own package: this test takes the toy
// driver (internal/toydriver, registered on import) through config validation, the router and
// the poison queue. It proves the seams, not delivery: the conformance suite does that on real
// brokers.

func TestToyDriverThroughConfigRouterAndPoison(t *testing.T) {
	// Config: the toy's section is known because it registered; its errors have file and line.
	_, err := config.Parse("toy.yaml", []byte("backend: toy\ntoy:\n  buffer: 0\n"))
	require.NoError(t, err, "the section parses")
	bad, err := config.Parse("toy.yaml", []byte("backend: toy\ntoy:\n  buffer: 0\n  colour: red\n"))
	require.NoError(t, err)
	_, err = bus.BackendConfig(bad)
	require.ErrorIs(t, err, config.ErrInvalid)
	assert.Equal(t, []string{
		`toy.yaml:4: toy.colour: unknown key (known keys: buffer, consumer_group)`,
		`toy.yaml:3: toy.buffer: must be at least 1`,
	}, strings.Split(err.Error(), "\n"))
	typo, err := config.Parse("toy.yaml", []byte("backend: tyo\n"))
	require.NoError(t, err)
	_, err = bus.BackendConfig(typo)
	require.ErrorIs(t, err, bus.ErrUnknownBackend)
	assert.Contains(t, err.Error(), `toy.yaml:1: backend: unknown backend "tyo" (did you mean toy?)`)

	cfg, err := config.Parse("toy.yaml", []byte(`backend: toy
toy: {consumer_group: billing}
router:
  retry: {max_attempts: 2, initial_interval: 1ms, max_interval: 1ms}
  poison: {topic: "{topic}.dead"}
`))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, cfg)
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, "toy", b.Backend())
	require.ErrorIs(t, b.Require(bus.Replay), bus.ErrNotSupported)

	poisoned, err := b.Subscriber.Subscribe(ctx, "invoices.dead")
	require.NoError(t, err)

	r, err := router.FromConfig(b, cfg)
	require.NoError(t, err)
	var calls atomic.Int32
	r.AddConsumerHandler("invoice-created", "invoices", b.Subscriber, func(*message.Message) error {
		calls.Add(1)
		return errors.New("tax service down")
	})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	<-r.Running()
	require.NoError(t, b.Publish(ctx, "invoices", bus.Event{ID: "inv-1", Type: "invoice.created.v1", Source: "billing", Key: "customer-7"}))

	var pm *message.Message
	select {
	case pm = <-poisoned:
		pm.Ack()
	case <-ctx.Done():
		t.Fatal("nothing reached the poison topic")
	}
	require.NoError(t, r.Close())
	require.NoError(t, <-done)

	prov, err := middleware.ParseProvenance(pm)
	require.NoError(t, err)
	assert.Equal(t, middleware.ReasonExhausted, prov.Reason)
	assert.Equal(t, "invoice-created", prov.Handler)
	assert.Equal(t, "tax service down", prov.Error)
	assert.Equal(t, 2, prov.Attempts)
	assert.Equal(t, bus.Position{Backend: "toy", Topic: "invoices", ConsumerGroup: "billing", Coordinates: "seq 1"}, prov.Position)
	assert.Equal(t, "toy invoices seq 1 (group billing)", pm.Metadata.Get(middleware.HeaderPoisonPosition))
	assert.Equal(t, int32(2), calls.Load())
}
