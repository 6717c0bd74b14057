package memory_test

import (
	"testing"

	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestConformanceRealTimeTmp(t *testing.T) {
	storetest.Run(t, storetest.Config{
		New: func(t *testing.T) presence.Store { return newStore(t, memory.Config{}) },
	})
}
