package rabbitmq

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/assert"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Reply codes the live tests do not provoke (530 for a vhost, 320 on a broker shutdown) map
// to their class as the live ones do.
func TestClassOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{amqp.ErrCredentials, driver.ErrUnauthorized},
		{amqp.ErrVhost, driver.ErrUnauthorized},
		{amqp.ErrSASL, driver.ErrUnauthorized},
		{&amqp.Error{Code: amqp.NotAllowed, Reason: "NOT_ALLOWED - access to vhost 'x' refused", Server: true}, driver.ErrUnauthorized},
		{fmt.Errorf("declare: %w", &amqp.Error{Code: amqp.AccessRefused, Server: true}), driver.ErrUnauthorized},
		{&amqp.Error{Code: amqp.ConnectionForced, Reason: "CONNECTION_FORCED - broker forced connection closure", Server: true}, driver.ErrUnavailable},
		{amqp.ErrClosed, driver.ErrUnavailable},
		{fmt.Errorf("%w (reconnecting)", ErrNotConnected), driver.ErrUnavailable},
		{errChannelLost, driver.ErrUnavailable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, driver.ErrUnavailable},
		{ErrPublisherClosed, driver.ErrClosed},
		{ErrSubscriberClosed, driver.ErrClosed},
		{fmt.Errorf("publish: %w", ErrInvalidTopic), driver.ErrInvalidEvent},
		{&amqp.Error{Code: amqp.PreconditionFailed, Server: true}, nil},
		{ErrNacked, driver.ErrUnavailable},
		{ErrUnroutable, nil},
	} {
		assert.Equal(t, c.want, classOf(c.err), "%v", c.err)
	}
}

// classify keeps amqp091's error for errors.As and never wraps a class twice.
func TestClassifyKeepsTheChain(t *testing.T) {
	err := classify("connect to amqp://127.0.0.1:5672/%2F", amqp.ErrCredentials)
	assert.ErrorIs(t, err, driver.ErrUnauthorized)
	var ae *amqp.Error
	assert.True(t, errors.As(err, &ae))
	assert.Equal(t, amqp.AccessRefused, ae.Code)
	again := classify("open", err)
	assert.Equal(t, 1, strings.Count(again.Error(), driver.ErrUnauthorized.Error()), again.Error())
}
