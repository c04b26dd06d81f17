package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/middleware"
)

// Pure logic of the small middleware, called directly: no broker is involved.

func TestTimeoutGivesEachAttemptItsOwnDeadline(t *testing.T) {
	timeout, err := middleware.Timeout(30 * time.Millisecond)
	require.NoError(t, err)
	rc := middleware.DefaultRetryConfig()
	rc.MaxAttempts, rc.InitialInterval, rc.MaxInterval, rc.Jitter = 3, 50*time.Millisecond, 50*time.Millisecond, 0
	retry, err := middleware.NewRetry(rc, testLogger())
	require.NoError(t, err)
	var deadlines []time.Time
	h := retry(timeout(func(m *message.Message) ([]*message.Message, error) {
		d, ok := m.Context().Deadline()
		require.True(t, ok, "attempt %d has no deadline", middleware.Attempt(m))
		deadlines = append(deadlines, d)
		<-m.Context().Done()
		return nil, m.Context().Err()
	}))
	msg := message.NewMessage("m", nil)
	_, err = h(msg)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Len(t, deadlines, 3)
	for i := 1; i < len(deadlines); i++ {
		assert.GreaterOrEqual(t, deadlines[i].Sub(deadlines[i-1]), 80*time.Millisecond, "the backoff wait is not taken from the next attempt's deadline")
	}
	assert.NoError(t, msg.Context().Err(), "the message's own context is left as it was")

	_, err = middleware.Timeout(0)
	assert.Error(t, err)
}

func TestCorrelationIDIsKeptAndPropagated(t *testing.T) {
	msg, err := bus.NewMessage(bus.Event{ID: "evt-9", Type: "t", Source: "s"}, nil)
	require.NoError(t, err)
	var inHandler string
	out, err := middleware.CorrelationID(func(m *message.Message) ([]*message.Message, error) {
		inHandler = middleware.CorrelationIDFrom(m.Context())
		return []*message.Message{message.NewMessage("out-1", nil)}, nil
	})(msg)
	require.NoError(t, err)
	assert.Equal(t, "evt-9", inHandler, "a message without one gets its event id")
	assert.Equal(t, "evt-9", out[0].Metadata.Get(middleware.HeaderCorrelationID))

	msg.Metadata.Set(middleware.HeaderCorrelationID, "flow-1")
	out, _ = middleware.CorrelationID(func(m *message.Message) ([]*message.Message, error) {
		return []*message.Message{message.NewMessage("out-2", nil)}, nil
	})(msg)
	assert.Equal(t, "flow-1", out[0].Metadata.Get(middleware.HeaderCorrelationID))
}

func TestPermanentAndRecoverer(t *testing.T) {
	base := errors.New("no such account")
	err := middleware.Permanent(base)
	assert.True(t, middleware.IsPermanent(err))
	assert.ErrorIs(t, err, base)
	assert.ErrorIs(t, err, middleware.ErrPermanent)
	assert.Nil(t, middleware.Permanent(nil))
	assert.False(t, middleware.IsPermanent(base))

	_, err = middleware.Recoverer(func(*message.Message) ([]*message.Message, error) { panic("boom") })(message.NewMessage("m", nil))
	var pe *middleware.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "boom", pe.Value)
	assert.Contains(t, pe.Stack, "chain_test.go")
}
