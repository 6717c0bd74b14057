//go:build race

package middleware_test

// raceEnabled is set under -race, which slows the largest tests tenfold.
const raceEnabled = true
