//go:build race

package kafka_test

// raceEnabled is true when the tests run with -race.
const raceEnabled = true
