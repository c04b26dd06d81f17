// Package driver is the contract between eventbus and a broker's driver: what a driver
// implements, what it returns, how it registers, and the helpers only drivers need. Services
// code against package bus; they import a driver's package only for its side effect of
// registering (import _ "github.com/eventbus-go/eventbus/backends/kafka").
//
// A driver package owns everything about its broker: its config struct (the section of the
// config file named after the backend), the defaults, the translation to its client's options,
// the capabilities it declares and the coordinates of a message in the broker. Adding a
// backend touches no file outside its own package: Register makes its section known to the
// config loader, its capabilities known to the conformance suite, and its positions printable.
//
// The model is Go CDK's pubsub/driver: small interfaces here, a small concrete API in bus.
package driver
