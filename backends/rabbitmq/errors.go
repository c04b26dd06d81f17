package rabbitmq

import (
	"errors"
	"io"
	"net"
	"syscall"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// classOf returns the portable error class (driver.ErrUnauthorized, ErrUnavailable, ErrClosed)
// of an error from amqp091 or this driver, or nil when it has none. It reads the reply codes of
// *amqp091.Error, never the message text:
//
//   - ErrUnauthorized: 403 ACCESS_REFUSED (a wrong username or password, amqp091.ErrCredentials;
//     no access to the vhost, amqp091.ErrVhost; no shared SASL mechanism, amqp091.ErrSASL; a
//     permission missing on a resource) and 530 NOT_ALLOWED (the vhost refused the connection).
//   - ErrUnavailable: ErrNotConnected (the connection is down and being re-established), a
//     channel lost under a Publish, amqp091.ErrClosed, 320 CONNECTION_FORCED (the broker shut
//     the connection, on a restart say), 506 RESOURCE_ERROR and 541 INTERNAL_ERROR, and any
//     net.Error, connection refused or reset, or EOF from the socket; and ErrNacked, a message
//     the broker refused because a queue bound to the topic is full.
//   - ErrClosed: ErrPublisherClosed and ErrSubscriberClosed, which wrap it.
func classOf(err error) error {
	if err == nil {
		return nil
	}
	if c := driver.ClassOf(err); c != nil {
		return c
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.AccessRefused, amqp.NotAllowed:
			return driver.ErrUnauthorized
		case amqp.ConnectionForced, amqp.ResourceError, amqp.InternalError, amqp.ChannelError:
			// ChannelError is amqp091.ErrClosed: the connection or channel went away.
			return driver.ErrUnavailable
		}
	}
	switch {
	case errors.Is(err, ErrNacked): // a full queue: it takes messages again once drained
		return driver.ErrUnavailable
	case errors.Is(err, ErrNotConnected), errors.Is(err, errChannelLost),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return driver.ErrUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return driver.ErrUnavailable
	}
	return nil
}

// classify puts err's portable class in its chain, after what when what is not empty (see
// driver.Wrap).
func classify(what string, err error) error { return driver.Wrap(what, classOf(err), err) }
