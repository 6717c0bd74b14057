//go:build race

package middleware

// raceOn is set under -race, where sync.Pool drops a quarter of what is Put.
const raceOn = true
