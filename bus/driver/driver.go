package driver

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventbus-go/eventbus/config"
)

// Driver opens one kind of broker. C is the driver's config struct: the section of the config
// file named after the backend is decoded onto DefaultConfig's value, validated (when *C has a
// Validate() error method) and handed to Open.
type Driver[C any] interface {
	// DefaultConfig returns a new config with every default filled in.
	DefaultConfig() *C
	// Open connects to the broker that cfg describes and builds its publisher and subscriber.
	// It must not keep cfg: the caller may reuse it. opts carries the caller's overrides.
	Open(ctx context.Context, cfg *C, opts Options) (*Conn, error)
}

// StartFrom says where a consumer group that has no committed position starts reading.
type StartFrom string

const (
	// StartDefault leaves the choice to the backend's configuration (consumer.start_from).
	StartDefault StartFrom = ""
	// StartOldest reads from the oldest message the broker retains.
	StartOldest StartFrom = "oldest"
	// StartNewest reads only messages published after the group first subscribed.
	StartNewest StartFrom = "newest"
)

// ParseStartFrom parses "oldest" or "newest" (and "", the default); the aliases people bring
// from Kafka's tools ("earliest", "beginning"; "latest", "end") are accepted.
func ParseStartFrom(s string) (StartFrom, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return StartDefault, nil
	case "oldest", "earliest", "beginning":
		return StartOldest, nil
	case "newest", "latest", "end":
		return StartNewest, nil
	}
	return "", fmt.Errorf("start position %q: want oldest or newest", s)
}

// Options are the caller's overrides of a driver's config, set through bus.Open's options.
// They concern the driver only: the codec and the required capabilities are the bus's.
type Options struct {
	// ConsumerGroup replaces the configured consumer group when not empty.
	ConsumerGroup string
	// StartFrom replaces the configured start position of new consumer groups.
	StartFrom StartFrom
	// StartAt, when not zero, makes a new consumer group start at the first message the broker
	// stamped at or after this time (Kafka offsets for times, a Redis stream id, a RabbitMQ
	// stream timestamp); it takes precedence over StartFrom. A driver that cannot honour it
	// fails Open with an error wrapping ErrNotSupported that says why.
	StartAt time.Time
	// StartPosition, when not empty, makes a new consumer group start at this message,
	// included: Position.Coordinates in the driver's own format (Kafka "partition:offset",
	// which positions that partition only; a Redis stream id). It takes precedence over
	// StartAt and StartFrom. A driver that cannot honour it, or cannot parse it, fails Open
	// with an error wrapping ErrNotSupported or saying the format it wants.
	StartPosition string
	// TemporaryGroup marks ConsumerGroup as throwaway (a CLI session, a demo run): the driver
	// may let the broker drop the group's state once unused, or remove it on Close.
	TemporaryGroup bool
	// MaxInFlight, when positive, replaces the configured consumer.max_in_flight: a subscriber that
	// hands out up to this many messages before earlier ones are acked (Pipelining). A driver
	// that cannot pipeline ignores it and does not declare Pipelining.
	MaxInFlight int
	// Logger receives the driver's and its Watermill adapter's logs; never nil.
	Logger *slog.Logger
}

// Conn is an open connection to a broker: what a driver's Open returns.
type Conn struct {
	// Publisher and Subscriber are the Watermill adapters for the broker. The subscriber
	// subscribes in the configured (or overridden) consumer group.
	Publisher  message.Publisher
	Subscriber message.Subscriber
	// Capabilities are the guarantees of this connection as configured.
	Capabilities Capabilities
	// Close releases what the driver holds besides the publisher and subscriber (a client, an
	// embedded broker). It is called after both are closed. May be nil.
	Close func() error
	// As sets target to a native client when it has one of that type; see bus.Bus.As. May be
	// nil.
	As func(target any) bool
	// Lag reports the consumer group's lag per partition; see LagFunc. May be nil: the backend
	// cannot tell, and bus.Bus.Lag returns ErrNotSupported.
	Lag LagFunc
	// Admin holds the operator's calls (rewind, status); see bus.Bus.Rewind. May be nil.
	Admin *Admin
}

// Registration is a registered driver with its config type erased, as bus.Open uses it.
type Registration struct {
	// Name is the backend's name: the value of backend: and the name of its config section.
	Name string

	defaultConfig func() any
	open          func(ctx context.Context, cfg any, opts Options) (*Conn, error)
	configType    string
}

// DefaultConfig returns a new config struct of the driver (a pointer) with its defaults.
func (r Registration) DefaultConfig() any { return r.defaultConfig() }

// Open opens a connection with cfg, which must be a pointer of the driver's config type.
func (r Registration) Open(ctx context.Context, cfg any, opts Options) (*Conn, error) {
	return r.open(ctx, cfg, opts)
}

var (
	mu      sync.RWMutex
	drivers = map[string]Registration{}
)

// Register makes d available under name, and name a section of the config file. Call it from
// the driver package's init. It panics if name is empty or taken, or d is nil: programming
// errors found at start-up.
func Register[C any](name string, d Driver[C]) {
	if name == "" || d == nil {
		panic("driver: Register needs a name and a driver")
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("driver: Register called twice for backend " + name)
	}
	typ := fmt.Sprintf("%T", new(C))
	drivers[name] = Registration{
		Name:          name,
		configType:    typ,
		defaultConfig: func() any { return d.DefaultConfig() },
		open: func(ctx context.Context, raw any, opts Options) (*Conn, error) {
			cfg, ok := raw.(*C)
			if !ok || cfg == nil {
				return nil, fmt.Errorf("backend %s takes a config of type %s, got %T", name, typ, raw)
			}
			return d.Open(ctx, cfg, opts)
		},
	}
	config.RegisterSection(name)
}

// Backends returns the names of the registered drivers, sorted.
func Backends() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the driver registered under name, or an error wrapping ErrUnknownBackend that
// lists the registered ones and suggests the closest.
func Lookup(name string) (Registration, error) {
	mu.RLock()
	r, ok := drivers[name]
	mu.RUnlock()
	if ok {
		return r, nil
	}
	names := Backends()
	hint := ""
	if s := config.Closest(name, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %s?)", s)
	}
	return Registration{}, fmt.Errorf("%w %q%s: registered backends are %v; a program must import a backend's package to use it", ErrUnknownBackend, name, hint, names)
}
