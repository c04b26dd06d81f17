//go:build !race

package rabbitmq_test

// raceEnabled is true when the tests run with -race.
const raceEnabled = false
