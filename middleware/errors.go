package middleware

import (
	"errors"
	"strconv"

	"github.com/vigilhq/vigil/presence"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrInvalidConfig reports a Config that New rejects.
	ErrInvalidConfig = errors.New("middleware: invalid config")
	// ErrNoIdentity is what an Identify function returns (wrapped or not)
	// when the request carries no identity. It is answered 401.
	ErrNoIdentity = errors.New("middleware: no identity")
	// ErrClosed reports a connection that has ended; every CloseError
	// matches it.
	ErrClosed = errors.New("middleware: connection closed")
	// ErrSlowConsumer reports a Send to a connection whose send queue was
	// full: the connection is closed with 4001.
	ErrSlowConsumer = errors.New("middleware: slow consumer")
	// ErrDraining reports a Server that is shutting down.
	ErrDraining = errors.New("middleware: draining")
	// ErrTooManyConns reports a client over Config.MaxConnsPerClient.
	ErrTooManyConns = errors.New("middleware: too many connections for client")
)

// ReasonLeft is the presence reason of an HTTP session that ended through
// the leave endpoint.
const ReasonLeft presence.Reason = "left"

// Close codes the server sends. docs/PROTOCOL.md has the full table and what
// a client should do on each.
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001 // draining: reconnect at once, with jitter
	CloseInvalidPayload = 1007 // a text frame was not valid UTF-8
	ClosePolicy         = 1008
	CloseTooBig         = 1009 // a message exceeded Config.ReadLimit
	CloseInternal       = 1011
	CloseRestart        = 1012
	CloseTryLater       = 1013
	CloseTimeout        = 4000 // no frame within the pong timeout
	CloseSlowConsumer   = 4001 // the send queue overflowed
	CloseKicked         = 4500 // kicked by the application: do not retry
	CloseIdle           = 4501 // no application message within IdleTimeout
	closeAbnormal       = 1006 // never sent: the connection dropped
)

// CloseError says how a connection ended. Every CloseError matches
// ErrClosed with errors.Is.
type CloseError struct {
	// Code is the close code sent or received; 1006 when the connection
	// dropped without one.
	Code int
	// Text is the close reason.
	Text string
	// Remote reports a close the client started.
	Remote bool
	// Reason is how the session ended for presence.
	Reason presence.Reason
}

func (e *CloseError) Error() string {
	by := "server"
	if e.Remote {
		by = "client"
	}
	s := "middleware: connection closed by " + by + " with " + strconv.Itoa(e.Code)
	if e.Text != "" {
		s += " " + strconv.Quote(e.Text)
	}
	return s
}

// Unwrap returns ErrClosed.
func (e *CloseError) Unwrap() error { return ErrClosed }
