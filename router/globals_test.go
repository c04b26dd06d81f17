package router_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/eventbus-go/eventbus/config"
	"github.com/eventbus-go/eventbus/router"
)

// Run makes its logger slog's default and its tracer provider OpenTelemetry's global while it
// runs, and puts the previous ones back when it returns; with KeepGlobals it leaves them alone.
// The runner is disabled (router.enabled false), so no broker is needed.
func TestRunnerGlobals(t *testing.T) {
	cfg, err := config.Parse("eventbus.yaml", []byte("backend: redis\nrouter:\n  enabled: false\n  http: {addr: \"127.0.0.1:0\"}\n"))
	require.NoError(t, err)
	for _, keep := range []bool{false, true} {
		prevLogger, prevTP := slog.Default(), otel.GetTracerProvider()
		var duringLogger *slog.Logger
		var duringTP any
		ctx, cancel := context.WithCancel(context.Background())
		r := &router.Runner{
			Config:      cfg,
			Handlers:    []router.Handler{{Name: "h", Topic: "t", Handle: func(*message.Message) error { return nil }}},
			LogOutput:   io.Discard,
			KeepGlobals: keep,
			Listening: func(net.Addr) {
				duringLogger, duringTP = slog.Default(), otel.GetTracerProvider()
				cancel()
			},
		}
		require.NoError(t, r.Run(ctx))
		assert.Same(t, prevLogger, slog.Default(), "keep %t: the previous default logger is back", keep)
		if keep {
			assert.Same(t, prevLogger, duringLogger, "KeepGlobals: the default logger is left alone")
			assert.Equal(t, prevTP, duringTP, "KeepGlobals: the tracer provider is left alone")
		} else {
			assert.NotSame(t, prevLogger, duringLogger, "the runner's logger is the default while it runs")
			assert.NotEqual(t, prevTP, duringTP, "the runner's tracer provider is the global while it runs")
		}
	}
}
