package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t *testing.T, cfg memory.Config) *memory.Store {
	t.Helper()
	s, err := memory.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New:      func(t *testing.T) presence.Store { return newStore(t, memory.Config{}) },
		Synctest: true,
	})
}
