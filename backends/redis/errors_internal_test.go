package redis

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// serverReply is an error reply of the server as go-redis hands it over: a type with the
// RedisError marker method (go-redis's own is internal). It stands for the replies the live
// tests cannot provoke: LOADING while a restarted server reads its data, CLUSTERDOWN, ...
type serverReply string

func (e serverReply) Error() string { return string(e) }
func (serverReply) RedisError()     {}

func TestClassOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{serverReply("WRONGPASS invalid username-password pair or user is disabled."), driver.ErrUnauthorized},
		{serverReply("NOAUTH Authentication required."), driver.ErrUnauthorized},
		{serverReply("NOPERM User reader has no permissions to run the 'xadd' command"), driver.ErrUnauthorized},
		{serverReply("LOADING Redis is loading the dataset in memory"), driver.ErrUnavailable},
		{serverReply("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), driver.ErrUnavailable},
		{serverReply("CLUSTERDOWN The cluster is down"), driver.ErrUnavailable},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, driver.ErrUnavailable},
		{redis.ErrPoolTimeout, driver.ErrUnavailable},
		{redis.ErrClosed, driver.ErrClosed},
		{ErrSubscriberClosed, driver.ErrClosed},
		{serverReply("WRONGTYPE Operation against a key holding the wrong kind of value"), nil},
		{serverReply("ERR syntax error"), nil},
		{errors.New("something else"), nil},
	} {
		assert.Equal(t, c.want, classOf(c.err), "%v", c.err)
	}
}

// classify keeps go-redis's error for errors.As and never wraps a class twice.
func TestClassifyKeepsTheChain(t *testing.T) {
	err := classify("connect", serverReply("WRONGPASS invalid username-password pair"))
	assert.ErrorIs(t, err, driver.ErrUnauthorized)
	var re redis.Error
	assert.True(t, errors.As(err, &re))
	again := classify("open", err)
	assert.Equal(t, 1, strings.Count(again.Error(), driver.ErrUnauthorized.Error()), again.Error())
}
