//go:build !race

package middleware

const raceOn = false
