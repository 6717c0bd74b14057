package client

import (
	"context"
	"strconv"
	"time"
)

// SetAway reports that the user is away (a locked screen, no input for a
// while), idle for idleFor already (zero: from now). The server records it
// as the session's activity, and the client goes away once all its
// sessions are (docs/PROTOCOL.md, "Activity": the text message "vigil:away
// <idle_ms>"). While the Client is not connected the report waits, and it
// is sent again at the start of every new connection, whose session would
// otherwise start active. Reporting away while away sends nothing. It fails
// with ErrClosed after the Client has stopped, or with the write's error
// (the report is then sent with the next connection).
func (c *Client) SetAway(ctx context.Context, idleFor time.Duration) error {
	return c.setActivity(ctx, true, max(idleFor, 0))
}

// SetActive reports that the user is back ("vigil:active"). Reporting
// active while active (the state of a new Client) sends nothing. Errors as
// for SetAway.
func (c *Client) SetActive(ctx context.Context) error {
	return c.setActivity(ctx, false, 0)
}

// Away reports whether the user was last reported away.
func (c *Client) Away() bool {
	c.actMu.Lock()
	defer c.actMu.Unlock()
	return c.away
}

func (c *Client) setActivity(ctx context.Context, away bool, idleFor time.Duration) error {
	c.actMu.Lock()
	defer c.actMu.Unlock()
	c.mu.Lock()
	closed, ws := c.state == Closed, c.ws
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if c.away == away {
		return nil
	}
	c.away, c.idleSince = away, c.now()-int64(idleFor)
	if ws == nil {
		return nil // opened sends it
	}
	return c.write(ctx, ws, Text, c.activityMsg())
}

// activityMsg is the activity message of docs/PROTOCOL.md. c.actMu is held.
func (c *Client) activityMsg() []byte {
	if !c.away {
		return []byte("vigil:active")
	}
	ms := max(time.Duration(c.now()-c.idleSince).Milliseconds(), 0)
	return strconv.AppendInt([]byte("vigil:away "), min(ms, 999_999_999_999), 10)
}
