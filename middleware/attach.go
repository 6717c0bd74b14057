package middleware

import (
	"fmt"
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
)

// Attach adds the Server's heartbeat, deadlines and presence to ws, a
// connection the application upgraded itself (with its own
// websocket.Upgrader) and keeps reading itself, so an existing gorilla
// handler needs only three more lines:
//
//	c, err := vs.Attach(r, clientID, ws) // after Upgrade, before reading
//	...
//	for {
//		typ, data, err := ws.ReadMessage()
//		if err != nil {
//			c.Finish(err)
//			return
//		}
//		if !c.Received(typ, data) {
//			continue // an application ping, answered; or invalid UTF-8
//		}
//		...
//	}
//
// Attach sets ws's read limit and its ping and pong handlers; the Server's
// scheduler pings it and drops it when the client goes silent, which makes
// the application's read fail. Pongs count as beats on their own; the
// application must pass each message it reads to Received for application
// pings, the idle timeout and UTF-8 checks, and call Finish when its read
// loop ends. Write data with c.Send, or with ws under the application's own
// lock; never call ws.WriteControl concurrently with a close.
//
// r is the upgrade request; Attach uses its context, and passes it to
// Config.Rooms, whose rooms and metadata the session joins as it opens. The
// Handler's code reaches the session through c.Session to join and leave
// rooms later. Attach fails with ErrDraining, ErrTooManyConns, the error of
// Config.Rooms, one wrapping presence.ErrInvalidID or
// presence.ErrInvalidArgument (Config.Rooms gave a bad room or metadata),
// or the Tracker's error; it never closes ws.
func (s *Server) Attach(r *http.Request, clientID string, ws *websocket.Conn) (*Conn, error) {
	if err := presence.ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("middleware: attach: %w", err)
	}
	rooms, _, err := s.roomsFor(r, clientID)
	if err != nil {
		return nil, fmt.Errorf("middleware: attach %q: %w", clientID, err)
	}
	if err := s.reserve(clientID); err != nil {
		return nil, fmt.Errorf("middleware: attach %q: %w", clientID, err)
	}
	c := s.newConn(ws, clientID, true)
	sess, err := s.tr.Connect(r.Context(), clientID, rooms.options(c.sessionGone))
	if err != nil {
		s.release(clientID)
		return nil, fmt.Errorf("middleware: attach %q: %w", clientID, err)
	}
	c.sess = sess
	// Made now: the application may call Finish from a goroutine other
	// than the one that calls Received.
	c.act = newReporter(s, sess, "")
	s.register(c)
	return c, nil
}

// Received handles a message the application read from an attached
// connection: it counts as a beat and as activity for the idle timeout; an
// application ping is answered; a text message that is not valid UTF-8
// closes the connection with 1007. It reports whether the application should
// process the message.
func (c *Conn) Received(typ int, data []byte) bool {
	if c.isClosing() {
		return false
	}
	return c.received(MessageType(typ), data)
}

// Finish ends an attached connection once the application's read loop has
// ended: it closes the connection (1000 unless something else closed it
// first) and ends the session with the right reason. err is the error that
// ended the read loop, if any. Calling it twice does nothing.
func (c *Conn) Finish(err error) {
	if !c.attached || !c.finishing.CompareAndSwap(false, true) {
		return
	}
	if err != nil {
		c.readFailed(err)
	}
	c.finish()
}
