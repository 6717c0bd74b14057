// This file joins package time in the chat demo that TestClockSkew builds
// (go build -overlay): with the patched time.Now (one added line,
// "sec += wallSkew"), it sets the process's wall clock
// VIGIL_FAULTS_WALL_SKEW (a duration in whole seconds, such as "30s" or
// "-30s") away from the machine's, as a machine whose clock is off would.
// The monotonic clock is left alone, as a wrong wall clock leaves
// CLOCK_MONOTONIC alone: time.Since and timers are as before.

package time

import "syscall"

// wallSkew is added to the seconds of every wall-clock reading of
// time.Now.
var wallSkew int64

func init() {
	if s, ok := syscall.Getenv("VIGIL_FAULTS_WALL_SKEW"); ok {
		if d, err := ParseDuration(s); err == nil {
			wallSkew = int64(d / Second)
		}
	}
}
