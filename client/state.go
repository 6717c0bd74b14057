package client

import (
	"strconv"
	"time"
)

// State is where a Client is in its life.
type State uint8

// The states. A Client starts Connecting, is Open while it has a
// connection, Reconnecting between connections, and Closed at the end.
// Initial, the zero State, is a Client before Dial's first attempt: it
// shows only as StateChange.From of the first OnState call.
const (
	Initial State = iota
	Connecting
	Open
	Reconnecting
	Closed
)

// String returns the state's name, as the browser client spells it.
func (s State) String() string {
	switch s {
	case Initial:
		return "initial"
	case Connecting:
		return "connecting"
	case Open:
		return "open"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// StateChange is passed to Config.OnState.
type StateChange struct {
	// From and To are the states before and after. They are equal when
	// the Client makes another attempt in Connecting or Reconnecting.
	From, To State
	// Attempt counts the failed attempts in a row before the one announced
	// (Connecting, Reconnecting): 0 for Dial's first attempt and for the
	// first attempt after a drop, which is not a failed attempt. For Open,
	// the attempts that failed before it; for Closed, those that failed
	// since the last Open (Config.MaxAttempts when the Client gave up).
	Attempt int
	// Delay is how long the Client waits before the attempt it announces
	// (Connecting and Reconnecting).
	Delay time.Duration
	// Err is why the previous connection or attempt ended; for Closed, why
	// the Client stopped (ErrClosed after Close).
	Err error
}
