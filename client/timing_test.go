package client

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The write timeout's default stays within PongTimeout, and a WriteTimeout
// longer than PongTimeout is refused with a message naming the relation.
//
// timing: WriteTimeout against PongTimeout, the relation under test.
func TestConfigTimingRelations(t *testing.T) {
	c, err := Config{PongTimeout: 4 * time.Second}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.WriteTimeout != 4*time.Second {
		t.Errorf("WriteTimeout with PongTimeout 4s: %v, want 4s", c.WriteTimeout)
	}
	if c, _ := (Config{}).withDefaults(); c.WriteTimeout != DefaultWriteTimeout {
		t.Errorf("default WriteTimeout %v, want %v", c.WriteTimeout, DefaultWriteTimeout)
	}
	_, err = Config{PongTimeout: 5 * time.Second, WriteTimeout: 6 * time.Second}.withDefaults()
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "must not exceed PongTimeout") {
		t.Errorf("WriteTimeout over PongTimeout: %v, want ErrInvalidConfig naming the relation", err)
	}
}
