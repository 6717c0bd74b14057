package storetest_test

import (
	"testing"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	"github.com/vigilhq/vigil/store/storetest"
)

// A store's own test runs the suite with a function that makes a fresh,
// empty store. Stores whose clock is the process's own run it in synctest
// bubbles; a store on a server (Redis) runs it in real time.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		storetest.Run(t, storetest.Config{
			New: func(t *testing.T) presence.Store {
				s, err := memory.New(memory.Config{})
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			Synctest: true,
		})
	}
	_ = testConformance // in a _test.go file: func TestConformance(t *testing.T) { ... }
}
