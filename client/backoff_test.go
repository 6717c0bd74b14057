package client

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	base, maxd := 500*time.Millisecond, 30*time.Second
	tests := []struct {
		n    int
		want time.Duration // the ceiling
	}{
		{0, 500 * time.Millisecond},
		{1, time.Second},
		{2, 2 * time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second},
		{100, 30 * time.Second},
		{1 << 30, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := ceiling(tt.n, base, maxd); got != tt.want {
			t.Errorf("ceiling(%d) = %v, want %v", tt.n, got, tt.want)
		}
		if got := backoff(tt.n, base, maxd, func() float64 { return 0 }); got != 0 {
			t.Errorf("backoff(%d) with rnd 0 = %v, want 0", tt.n, got)
		}
		top := backoff(tt.n, base, maxd, func() float64 { return math.Nextafter(1, 0) })
		if top >= tt.want || top < tt.want-time.Microsecond {
			t.Errorf("backoff(%d) with rnd→1 = %v, want just under %v", tt.n, top, tt.want)
		}
	}
}

// Full jitter: the delays of attempt n are uniform over [0, ceiling(n)).
// A chi-square test over 10 bins, with a seeded generator so that the test
// is deterministic; the 0.999 quantile of chi-square with 9 degrees of
// freedom is 27.88.
func TestBackoffJitterIsUniform(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const samples, bins = 20000, 10
	for _, n := range []int{0, 3, 8} {
		ceil := ceiling(n, DefaultBackoffBase, DefaultBackoffMax)
		var count [bins]int
		var sum float64
		for range samples {
			d := backoff(n, DefaultBackoffBase, DefaultBackoffMax, rng.Float64)
			if d < 0 || d >= ceil {
				t.Fatalf("attempt %d: delay %v outside [0, %v)", n, d, ceil)
			}
			count[int(float64(d)/float64(ceil)*bins)]++
			sum += float64(d)
		}
		exp := float64(samples) / bins
		var chi2 float64
		for _, c := range count {
			chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
		}
		if chi2 > 27.88 {
			t.Errorf("attempt %d: chi-square %.1f over %v: not uniform", n, chi2, count)
		}
		mean := time.Duration(sum / samples)
		if lo, hi := ceil*48/100, ceil*52/100; mean < lo || mean > hi {
			t.Errorf("attempt %d: mean delay %v, want about %v", n, mean, ceil/2)
		}
	}
}
