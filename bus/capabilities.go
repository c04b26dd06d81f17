package bus

import "github.com/eventbus-go/eventbus/bus/driver"

// Capability names one guarantee a backend may or may not give; see the constants.
type Capability = driver.Capability

// Capabilities is what a backend, as configured, guarantees. Drivers declare it honestly and the
// conformance suite (bus/bustest) holds them to it.
type Capabilities = driver.Capabilities

// The capabilities; bus/driver documents each.
const (
	ConsumerGroups = driver.ConsumerGroups
	PerKeyOrdering = driver.PerKeyOrdering
	Persistence    = driver.Persistence
	Replay         = driver.Replay
	ReplayByTime   = driver.ReplayByTime
	NativeDelay    = driver.NativeDelay
	Pipelining     = driver.Pipelining
)

// AllCapabilities lists every capability, in the order they are reported.
var AllCapabilities = driver.AllCapabilities
