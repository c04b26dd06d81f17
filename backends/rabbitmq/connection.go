package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/eventbus-go/eventbus/bus/driver"
)

// Connection is an AMQP connection that stays up: when the broker closes it or the network
// fails, it dials again with exponential backoff until Close. The driver keeps two, one for
// publishing and one for consuming, as RabbitMQ recommends (a publisher held back by flow
// control then cannot delay the consumers' acks).
//
// It owns its reconnect goroutine. Unlike watermill-amqp v3.1.0's ConnectionWrapper, every
// read and write of the current connection goes through one mutex, so reconnecting is free of
// data races.
type Connection struct {
	role     string // "publish" or "consume", for logs
	url      string // holds credentials: never logged
	endpoint string // the broker without credentials, for logs and errors
	cfg      amqp.Config
	backoff  ReconnectConfig
	logger   *slog.Logger

	mu      sync.Mutex
	conn    *amqp.Connection // nil while disconnected
	gen     uint64           // incremented on every successful dial
	ready   chan struct{}    // closed while conn is set; replaced when it is lost
	lastErr error            // why the last connection ended or the last dial failed
	closed  bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	channelsOpened atomic.Uint64
}

// dialConnection connects once, failing fast when the broker cannot be reached, and then keeps
// the connection up until Close.
func dialConnection(role string, u amqp.URI, cfg amqp.Config, rc ReconnectConfig, logger *slog.Logger) (*Connection, error) {
	c := &Connection{
		role:     role,
		url:      u.String(),
		endpoint: endpoint(u),
		cfg:      cfg,
		backoff:  rc,
		logger:   logger.With("connection", role, "broker", endpoint(u)),
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	conn, err := c.dial()
	if err != nil {
		err = classify("connect to "+c.endpoint, err)
		if errors.Is(err, driver.ErrUnavailable) {
			err = fmt.Errorf("%w (is RabbitMQ up there?)", err)
		}
		return nil, err
	}
	c.setConnected(conn)
	c.wg.Add(1)
	go c.keepUp(conn)
	return c, nil
}

func (c *Connection) dial() (*amqp.Connection, error) {
	cfg := c.cfg
	// amqp091 zeroes SASL credentials after the handshake in some versions; give each dial its own.
	cfg.SASL = nil
	for _, a := range c.cfg.SASL {
		if p, ok := a.(*amqp.PlainAuth); ok {
			cp := *p
			a = &cp
		}
		cfg.SASL = append(cfg.SASL, a)
	}
	if c.cfg.Properties != nil {
		cfg.Properties = amqp.Table{}
		for k, v := range c.cfg.Properties {
			cfg.Properties[k] = v
		}
	}
	return amqp.DialConfig(c.url, cfg)
}

func (c *Connection) setConnected(conn *amqp.Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	c.gen++
	c.lastErr = nil
	close(c.ready)
}

// keepUp watches the current connection and replaces it when it is lost, until Close.
func (c *Connection) keepUp(conn *amqp.Connection) {
	defer c.wg.Done()
	for {
		closes := conn.NotifyClose(make(chan *amqp.Error, 1))
		blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
		lost := c.watch(closes, blocks)
		if lost == nil {
			return // Close
		}
		c.mu.Lock()
		c.conn = nil
		c.ready = make(chan struct{})
		c.lastErr = lost
		c.mu.Unlock()
		c.logger.Warn("RabbitMQ connection lost; reconnecting", "error", lost)
		if conn = c.redial(); conn == nil {
			return
		}
	}
}

// watch waits until the connection ends, logging flow-control blocks meanwhile. It returns
// why it ended, or nil when Close was called.
func (c *Connection) watch(closes <-chan *amqp.Error, blocks <-chan amqp.Blocking) error {
	for {
		select {
		case <-c.done:
			return nil
		case b, ok := <-blocks:
			if !ok {
				blocks = nil
				continue
			}
			if b.Active {
				c.logger.Warn("RabbitMQ blocked this connection (a memory or disk alarm); publishing waits", "reason", b.Reason)
			} else {
				c.logger.Info("RabbitMQ unblocked this connection")
			}
		case e, ok := <-closes:
			if !ok || e == nil {
				return errors.New("connection closed")
			}
			return e
		}
	}
}

func (c *Connection) redial() *amqp.Connection {
	bo := newBackoff(c.backoff)
	timer := time.NewTimer(bo.NextBackOff())
	defer timer.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-c.done:
			return nil
		case <-timer.C:
		}
		conn, err := c.dial()
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				_ = conn.Close()
				return nil
			}
			c.mu.Unlock()
			c.setConnected(conn)
			c.logger.Info("RabbitMQ connection re-established", "attempts", attempt)
			return conn
		}
		c.mu.Lock()
		c.lastErr = err
		c.mu.Unlock()
		wait := bo.NextBackOff()
		c.logger.Debug("RabbitMQ reconnect attempt failed", "attempt", attempt, "retry_in", wait, "error", err)
		timer.Reset(wait)
	}
}

// ErrNotConnected is wrapped by errors from operations that need the broker while the
// connection to it is down (and, for Publish, stayed down until the deadline).
var ErrNotConnected = errors.New("not connected to RabbitMQ")

// current returns the connection and its generation, or an error wrapping ErrNotConnected
// while reconnecting. reconnected is closed once a connection is up again; it is nil while one
// is up.
func (c *Connection) current() (conn *amqp.Connection, gen uint64, reconnected <-chan struct{}, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, nil, fmt.Errorf("%s connection to %s %w", c.role, c.endpoint, driver.ErrClosed)
	}
	if c.conn == nil {
		reason := "reconnecting"
		if c.lastErr != nil {
			reason = "reconnecting after: " + c.lastErr.Error()
		}
		return nil, 0, c.ready, fmt.Errorf("%w (%s, %s)", ErrNotConnected, c.endpoint, reason)
	}
	return c.conn, c.gen, nil, nil
}

// Current returns the live *amqp091.Connection, or an error wrapping ErrNotConnected while it
// is being re-established. The value changes after a reconnect: do not keep it.
func (c *Connection) Current() (*amqp.Connection, error) {
	conn, _, _, err := c.current()
	return conn, err
}

// Channel opens a channel on the current connection, waiting for a reconnect until ctx ends.
// The caller owns and closes it.
func (c *Connection) Channel(ctx context.Context) (*amqp.Channel, error) {
	for {
		conn, _, reconnected, err := c.current()
		if err == nil {
			return c.openChannel(conn)
		}
		if reconnected == nil {
			return nil, err
		}
		select {
		case <-reconnected:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
	}
}

func (c *Connection) openChannel(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel on %s: %w", c.endpoint, err)
	}
	c.channelsOpened.Add(1)
	return ch, nil
}

// Endpoint names the broker (scheme, host, port, vhost) without credentials.
func (c *Connection) Endpoint() string { return c.endpoint }

// Close closes the connection and stops reconnecting. It is safe to call more than once.
func (c *Connection) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	conn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		return nil
	}
	if err := conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close %s connection to %s: %w", c.role, c.endpoint, err)
	}
	return nil
}

func newBackoff(rc ReconnectConfig) *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     rc.InitialInterval,
		RandomizationFactor: 0.25,
		Multiplier:          2,
		MaxInterval:         rc.MaxInterval,
	}
}
