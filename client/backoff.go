package client

import "time"

// backoff returns the delay before reconnect attempt n (0 for the first
// attempt after a drop): full jitter, uniform in [0, min(max, base·2^n)),
// as docs/PROTOCOL.md specifies. rnd returns a uniform number in [0, 1).
func backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	return time.Duration(rnd() * float64(ceiling(n, base, max)))
}

// ceiling is min(max, base·2^n), without overflow.
func ceiling(n int, base, max time.Duration) time.Duration {
	c := base
	for i := 0; i < n && c < max; i++ {
		c *= 2
	}
	return min(c, max)
}
