package kafka

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// The errors Sarama returns as values the live tests cannot provoke on an in-process broker
// (an ACL refusal, a partition without a leader) map to their class as the live ones do.
func TestClassOf(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want error
	}{
		{sarama.ErrSASLAuthenticationFailed, driver.ErrUnauthorized},
		{sarama.Wrap(sarama.ErrOutOfBrokers, sarama.ErrSASLAuthenticationFailed), driver.ErrUnauthorized},
		{&sarama.ProducerError{Err: sarama.ErrTopicAuthorizationFailed}, driver.ErrUnauthorized},
		{sarama.ErrGroupAuthorizationFailed, driver.ErrUnauthorized},
		{sarama.Wrap(sarama.ErrOutOfBrokers, refused), driver.ErrUnavailable},
		{&sarama.ProducerError{Err: sarama.ErrNotEnoughReplicas}, driver.ErrUnavailable},
		{sarama.ErrLeaderNotAvailable, driver.ErrUnavailable},
		{fmt.Errorf("cannot produce message: %w", refused), driver.ErrUnavailable},
		{sarama.ErrClosedClient, driver.ErrClosed},
		{sarama.ErrInvalidTopic, driver.ErrInvalidEvent},
		{sarama.ErrMessageSizeTooLarge, nil}, // ErrTooLarge is mapped where the size limit is
		{sarama.ConfigurationError("bad"), nil},
		{errors.New("something else"), nil},
	} {
		assert.Equal(t, c.want, classOf(c.err), "%v", c.err)
	}
}

// classify keeps the client's error for errors.As and never wraps a class twice.
func TestClassifyKeepsTheChain(t *testing.T) {
	err := classify("produce", &sarama.ProducerError{Err: sarama.ErrNotEnoughReplicas})
	assert.ErrorIs(t, err, driver.ErrUnavailable)
	var kerr sarama.KError
	assert.True(t, errors.As(err, &kerr))
	assert.Equal(t, sarama.ErrNotEnoughReplicas, kerr)

	again := classify("publish", err)
	assert.Equal(t, 1, strings.Count(again.Error(), driver.ErrUnavailable.Error()), again.Error())
	assert.Equal(t, "x", classify("", errors.New("x")).Error(), "an error without a class is left as it is")
}
