package client

import "testing"

func TestStateString(t *testing.T) {
	tests := []struct {
		s    State
		want string
	}{
		{Initial, "initial"},
		{Connecting, "connecting"},
		{Open, "open"},
		{Reconnecting, "reconnecting"},
		{Closed, "closed"},
		{State(9), "state(9)"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("State(%d).String() = %q, want %q", uint8(tt.s), got, tt.want)
		}
	}
	// The zero State is what the first OnState call reports as From.
	if got := State(0).String(); got != "initial" {
		t.Errorf("zero State prints %q, want %q", got, "initial")
	}
}
