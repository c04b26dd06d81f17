package driver_test

import (
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eventbus-go/eventbus/bus/driver"
)

func TestWrap(t *testing.T) {
	err := driver.Wrap("connect to 127.0.0.1:1", driver.ErrUnavailable, io.EOF)
	assert.EqualError(t, err, "connect to 127.0.0.1:1: broker unavailable: EOF")
	assert.ErrorIs(t, err, driver.ErrUnavailable)
	assert.ErrorIs(t, err, io.EOF, "the client's error stays in the chain")
	assert.Equal(t, driver.ErrUnavailable, driver.ClassOf(err))

	// A class is never added twice, nor a second one over the first.
	again := driver.Wrap("open", driver.ErrUnauthorized, err)
	assert.EqualError(t, again, "open: connect to 127.0.0.1:1: broker unavailable: EOF")
	assert.NotErrorIs(t, again, driver.ErrUnauthorized)

	assert.EqualError(t, driver.Wrap("", driver.ErrClosed, io.EOF), "closed: EOF")
	plain := errors.New("no class")
	assert.Same(t, plain, driver.Wrap("", nil, plain))
	assert.NoError(t, driver.Wrap("x", driver.ErrClosed, nil))
	assert.Nil(t, driver.ClassOf(plain))
}
