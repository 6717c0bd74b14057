package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// demoDir is the temporary directory of the demo binary, once a test has
// built it.
var demoDir string

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if demoDir != "" {
			os.RemoveAll(demoDir)
		}
		os.Exit(code)
	}))
}
