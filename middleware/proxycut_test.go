package middleware

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Connections cut by a proxy all end at its idle timeout: the fifth such
// end within a second of the others names the age, once per cutRepeat.
func TestCutDetectorNamesTheAge(t *testing.T) {
	var d cutDetector
	now := time.Unix(1_000_000, 0)
	var got []time.Duration
	for i := range 12 {
		now = now.Add(7 * time.Second)
		age := 60*time.Second + time.Duration(i%3)*300*time.Millisecond // 60.0–60.6s
		if cut, ok := d.ended(now, age); ok {
			got = append(got, cut)
		}
	}
	if len(got) != 1 || got[0] < 60*time.Second || got[0] > 61*time.Second {
		t.Fatalf("warnings %v, want one naming about 60s", got)
	}
	// Still cutting a cutRepeat later: warned again, once the window holds
	// enough ends at that age.
	now = now.Add(cutRepeat)
	warned := 0
	for range cutMin {
		now = now.Add(time.Second)
		if _, ok := d.ended(now, 60*time.Second); ok {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings a cutRepeat later, want 1", warned)
	}
}

// Ordinary churn (clients vanishing at scattered ages) never looks like a
// proxy, even with many ends.
func TestCutDetectorIgnoresChurn(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for run := range 20 {
		var d cutDetector
		now := time.Unix(1_000_000, 0)
		for i := range 500 {
			now = now.Add(time.Duration(rnd.IntN(2000)) * time.Millisecond)
			age := time.Duration(rnd.Float64() * float64(30*time.Minute))
			if cut, ok := d.ended(now, age); ok {
				t.Fatalf("run %d, end %d: warned of a cut at %v from random ages", run, i, cut)
			}
		}
	}
}

// A cluster that is a minority of the recent ends is not a diagnosis: the
// proxy explains few of the drops.
func TestCutDetectorNeedsMostEnds(t *testing.T) {
	var d cutDetector
	now := time.Unix(1_000_000, 0)
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range 30 {
		now = now.Add(time.Second)
		age := time.Duration(100+rnd.IntN(1000)) * time.Second
		if i%5 == 0 {
			age = 60 * time.Second
		}
		if cut, ok := d.ended(now, age); ok {
			t.Fatalf("warned of %v with 1 end in 5 at that age", cut)
		}
	}
}
