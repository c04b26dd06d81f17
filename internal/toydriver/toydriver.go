// Package toydriver is a driver for tests of the seams, not of delivery: it registers backend
// "toy" (Watermill's in-memory channel, which is not a broker and stands in for none in a
// backend or conformance test) when imported, so that a test can show that a backend is added
// without editing any file outside its own package: config validation, the router, the poison
// queue and the CLI take it as they take the real ones.
package toydriver

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/eventbus-go/eventbus/bus/driver"
	"github.com/eventbus-go/eventbus/config"
)

// Name is the backend's name and config section.
const Name = "toy"

// Config is the toy's config section.
type Config struct {
	// Buffer is the output channel's size. Default: 64.
	Buffer int64 `yaml:"buffer"`
	// ConsumerGroup is recorded in positions. Default: "toys".
	ConsumerGroup string `yaml:"consumer_group"`
}

func (c *Config) Validate() error {
	if c.Buffer < 1 {
		return config.Invalid("buffer", "must be at least 1")
	}
	return nil
}

type toyDriver struct{}

func (toyDriver) DefaultConfig() *Config { return &Config{Buffer: 64, ConsumerGroup: "toys"} }

// The toy's "broker": one in-memory channel shared by every toy bus of the process, as buses
// share a real broker, closed when the last bus closes.
var shared struct {
	sync.Mutex
	ch   *gochannel.GoChannel
	refs int
}

func (toyDriver) Open(_ context.Context, cfg *Config, o driver.Options) (*driver.Conn, error) {
	group := cfg.ConsumerGroup
	if o.ConsumerGroup != "" {
		group = o.ConsumerGroup
	}
	shared.Lock()
	if shared.ch == nil {
		shared.ch = gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: cfg.Buffer, Persistent: true}, watermill.NewSlogLogger(o.Logger))
	}
	shared.refs++
	ch := shared.ch
	shared.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	return &driver.Conn{
		Publisher:    toyPublisher{ch},
		Subscriber:   &toySubscriber{ch: ch, group: group, ctx: ctx, cancel: cancel},
		Capabilities: driver.Capabilities{ConsumerGroups: false, Notes: map[driver.Capability]string{driver.Replay: "the toy keeps nothing"}},
		Close: func() error {
			shared.Lock()
			defer shared.Unlock()
			if shared.refs--; shared.refs == 0 {
				shared.ch = nil
				return ch.Close()
			}
			return nil
		},
	}, nil
}

// toyPublisher publishes to the shared channel; closing it leaves the channel to Conn.Close.
type toyPublisher struct{ ch *gochannel.GoChannel }

func (p toyPublisher) Publish(topic string, msgs ...*message.Message) error {
	return p.ch.Publish(topic, msgs...)
}

func (toyPublisher) Close() error { return nil }

// toySubscriber records a position of the toy's own format on each message: "seq N". Closing
// it ends its subscriptions.
type toySubscriber struct {
	ch     *gochannel.GoChannel
	group  string
	seq    atomic.Int64
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *toySubscriber) Close() error {
	s.cancel()
	return nil
}

func (s *toySubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(s.ctx, cancel)
	in, err := s.ch.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for m := range in {
			pos := driver.Position{Backend: Name, Topic: topic, ConsumerGroup: s.group, Coordinates: "seq " + strconv.FormatInt(s.seq.Add(1), 10)}
			m.SetContext(driver.ContextWithPosition(m.Context(), pos))
			select {
			case out <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func init() { driver.Register[Config](Name, toyDriver{}) }
