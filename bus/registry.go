package bus

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Driver opens one kind of broker. A driver registers itself under its backend's name in an init
// function, the way database/sql drivers do, so a service picks a backend by importing it and
// naming it in the config file:
//
//	import _ "github.com/eventbus-go/eventbus/backends/kafka"
type Driver interface {
	// DefaultConfig returns a pointer to a new config struct for the backend, with every default
	// filled in. Open decodes the backend's section of the config file onto it. The struct may
	// have a Validate() error method; it is called before Open.
	DefaultConfig() any

	// Open connects to the broker described by cfg (a value DefaultConfig returned, decoded and
	// validated) and builds its publisher and subscriber. opts carries the caller's overrides.
	Open(ctx context.Context, cfg any, opts Options) (*Backend, error)
}

// Backend is what a driver's Open returns: Watermill's publisher and subscriber for the broker,
// and what the driver declares about them.
type Backend struct {
	Publisher  message.Publisher
	Subscriber message.Subscriber

	// Capabilities are the guarantees of this backend as configured.
	Capabilities Capabilities

	// Close releases what the driver holds besides the publisher and subscriber (a client, an
	// embedded broker). It is called after both are closed. May be nil.
	Close func() error

	// As gives access to the native client; see Bus.As. May be nil.
	As func(target any) bool
}

var (
	driversMu sync.RWMutex
	drivers   = map[string]Driver{}
)

// Register makes a driver available under name. It panics if name is empty, the driver is nil
// or the name is taken: those are programming errors found at init time.
func Register(name string, d Driver) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if name == "" || d == nil {
		panic("bus: Register needs a name and a driver")
	}
	if _, dup := drivers[name]; dup {
		panic("bus: Register called twice for backend " + name)
	}
	drivers[name] = d
}

// Backends returns the names of the registered drivers, sorted.
func Backends() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the driver registered under name.
func Lookup(name string) (Driver, error) {
	driversMu.RLock()
	d, ok := drivers[name]
	driversMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (registered: %v; a service must import the backend's package)", ErrUnknownBackend, name, Backends())
	}
	return d, nil
}
