package client

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrClosed reports a Client that has ended: Close was called, or the
	// server asked it not to reconnect (see Err for why).
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected reports a Send while the Client is not connected and
	// its send queue is turned off (Config.SendQueueSize < 0).
	ErrNotConnected = errors.New("client: not connected")
	// ErrQueueFull reports a Send while reconnecting with
	// Config.SendQueueSize messages already queued.
	ErrQueueFull = errors.New("client: send queue full")
	// ErrGaveUp reports a Client that made Config.MaxAttempts failed
	// attempts in a row and stopped.
	ErrGaveUp = errors.New("client: gave up reconnecting")
	// ErrInvalidConfig reports a Config that Dial rejects.
	ErrInvalidConfig = errors.New("client: invalid config")
)

// CloseError is a connection closed by the server with a close frame, or
// dropped without one (Code 1006).
type CloseError struct {
	Code int
	Text string
}

func (e *CloseError) Error() string {
	s := "client: connection closed with " + strconv.Itoa(e.Code)
	if e.Text != "" {
		s += " " + strconv.Quote(e.Text)
	}
	return s
}

// HandshakeError is a WebSocket handshake the server refused with an HTTP
// status.
type HandshakeError struct {
	Status int
	// RetryAfter is the server's Retry-After (429 and 503); zero if none.
	RetryAfter time.Duration
}

func (e *HandshakeError) Error() string {
	return "client: handshake refused with " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
}

// Retryable reports whether a client should reconnect after the server
// closed the connection with code, following the close-code table of
// docs/PROTOCOL.md: 1000 (normal), 1007, 1008, 1009 and 4500–4999 mean do
// not reconnect; every other code (1001, 1006, 1011–1013, 4000–4499, and
// codes the table does not name) means reconnect.
func Retryable(code int) bool {
	switch {
	case code == 1000, code == 1007, code == 1008, code == 1009:
		return false
	case code >= 4500 && code <= 4999:
		return false
	}
	return true
}

// retryableStatus reports whether a refused handshake is worth retrying:
// 429 and 503 (after Retry-After), 408 and other 5xx. 401 and 403 stop,
// as docs/PROTOCOL.md says, and so does every other 4xx (a wrong URL or an
// invalid client ID does not heal by retrying).
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// permanent reports whether err ends the Client instead of a reconnect.
func permanent(err error) bool {
	var ce *CloseError
	if errors.As(err, &ce) {
		return !Retryable(ce.Code)
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		return !retryableStatus(he.Status)
	}
	return false
}

// ErrTimeout reports a connection dropped because the server sent nothing
// within Config.PongTimeout of an application ping. The Client reconnects.
var ErrTimeout = errors.New("client: server did not answer the heartbeat")
