package redis

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// classOf returns the portable error class (driver.ErrUnauthorized, ErrUnavailable, ErrClosed)
// of an error from go-redis or watermill-redisstream, or nil when it has none. It relies on
// go-redis's typed checks, which look at the server's error prefix, never on our own reading of
// the message:
//
//   - ErrUnauthorized: NOAUTH and WRONGPASS (redis.IsAuthError), NOPERM (redis.IsPermissionError).
//   - ErrUnavailable: LOADING, MASTERDOWN, CLUSTERDOWN, TRYAGAIN and "max number of clients"
//     (redis.IsLoadingError and its siblings), redis.ErrPoolTimeout, and any net.Error,
//     connection refused or reset, or EOF from the socket.
//   - ErrClosed: redis.ErrClosed (a command on a closed client).
func classOf(err error) error {
	if err == nil {
		return nil
	}
	if c := driver.ClassOf(err); c != nil {
		return c
	}
	switch {
	case redis.IsAuthError(err), redis.IsPermissionError(err):
		return driver.ErrUnauthorized
	case errors.Is(err, redis.ErrClosed):
		return driver.ErrClosed
	case redis.IsLoadingError(err), redis.IsMasterDownError(err), redis.IsClusterDownError(err),
		redis.IsTryAgainError(err), redis.IsMaxClientsError(err), errors.Is(err, redis.ErrPoolTimeout),
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
