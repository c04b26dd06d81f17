//go:build !race

package redis_test

// raceEnabled is true when the tests run with -race.
const raceEnabled = false
