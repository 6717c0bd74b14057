package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/presence"
)

// Activity reports: a client says whether its user is active or away
// (docs/PROTOCOL.md, "Activity"). Over WebSocket it is a text message
// starting with ActivityPrefix, handled here like the application ping and
// never delivered to the application; over HTTP heartbeats it is the
// "state" field. Each session keeps one reporter, which turns the reports
// into Session.SetActivity calls: a report of the activity the session
// already has costs nothing, and changes are coalesced so that a session
// makes at most one Store call per activityGap, the last one carrying the
// latest report. A client flipping states 1000 times a second costs one
// Store call a second.

// ActivityPrefix starts every activity message of the WebSocket protocol:
// "vigil:active", "vigil:away" and "vigil:away <idle_ms>". A text message
// with this prefix never reaches the application (unless
// Config.DisableActivity is set); one that is not a valid activity message
// closes the connection with 1008 "bad state".
const ActivityPrefix = "vigil:"

// MaxIdleMS bounds the idle time a report may carry, in milliseconds (12
// decimal digits, about 31 years).
const MaxIdleMS = 999_999_999_999

// activityGap is the least time between two Store calls of one session's
// activity: later changes wait, and only the latest is recorded.
const activityGap = time.Second

// errActivity reports an activity message or field that is not the
// documented one.
var errActivity = errors.New("middleware: bad activity report")

// parseActivity parses an activity message: ActivityPrefix followed by
// "active", "away", or "away " and the idle time in milliseconds (1–12
// decimal digits, no sign, no leading zero but for "0").
func parseActivity(msg string) (presence.Activity, time.Duration, error) {
	rest, ok := strings.CutPrefix(msg, ActivityPrefix)
	if !ok {
		return "", 0, fmt.Errorf("%w: no %q prefix", errActivity, ActivityPrefix)
	}
	switch {
	case rest == "active":
		return presence.ActivityActive, 0, nil
	case rest == "away":
		return presence.ActivityAway, 0, nil
	}
	ms, ok := strings.CutPrefix(rest, "away ")
	if !ok {
		return "", 0, fmt.Errorf("%w: %s, want %sactive, %saway or %saway <idle_ms>", errActivity, quoteShort(msg), ActivityPrefix, ActivityPrefix, ActivityPrefix)
	}
	idle, err := parseIdleMS(ms)
	if err != nil {
		return "", 0, err
	}
	return presence.ActivityAway, idle, nil
}

// parseIdleMS parses an idle time in milliseconds: 1–12 decimal digits, no
// sign, no leading zero but for "0".
func parseIdleMS(s string) (time.Duration, error) {
	if s == "" || len(s) > 12 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: idle_ms %s is not 0 to %d without leading zeros", errActivity, quoteShort(s), MaxIdleMS)
	}
	var n int64
	for i := 0; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%w: idle_ms %s is not a decimal number", errActivity, quoteShort(s))
		}
		n = n*10 + int64(d-'0')
	}
	return time.Duration(n) * time.Millisecond, nil
}

// reporter turns one session's activity reports into Store calls, at most
// one per activityGap (see the comment at the top of this file). It is safe
// for concurrent use; a timer, not a goroutine of its own, records a change
// that had to wait.
type reporter struct {
	s    *Server
	sess *presence.Session

	// mu guards the fields below.
	mu    sync.Mutex
	want  presence.Activity // the latest report
	idle  time.Duration     // its idle time
	at    int64             // Server.now() when it came
	sent  presence.Activity // what the session has (the last recorded)
	last  int64             // Server.now() of the last Store call; 0: none yet
	busy  bool              // a call is running, or the timer set
	timer *time.Timer
	done  bool // the session ended: record nothing more
}

func newReporter(s *Server, sess *presence.Session, a presence.Activity) *reporter {
	if a == "" {
		a = presence.ActivityActive
	}
	return &reporter{s: s, sess: sess, want: a, sent: a}
}

// report records a report received now; the Store call it needs (if any)
// is made before report returns, or after the gap by a timer.
func (r *reporter) report(a presence.Activity, idle time.Duration) {
	if !r.s.states {
		return
	}
	now := r.s.now()
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.want, r.idle, r.at = a, idle, now
	if r.busy || a == r.sent {
		r.mu.Unlock()
		return
	}
	r.busy = true
	if wait := time.Duration(r.last + int64(activityGap) - now); r.last != 0 && wait > 0 {
		r.timer = time.AfterFunc(wait, r.flush)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.flush()
}

// flush records the latest report, if it differs from what the session
// has; r.busy is set. A report that came while it ran is recorded after
// the gap.
func (r *reporter) flush() {
	now := r.s.now()
	r.mu.Lock()
	r.timer = nil
	if r.done || r.want == r.sent {
		r.busy = false
		r.mu.Unlock()
		return
	}
	a, idle := r.want, r.idle
	if a == presence.ActivityAway {
		idle += time.Duration(now - r.at) // the wait is idle time too
		idle = min(idle, MaxIdleMS*time.Millisecond)
	} else {
		idle = 0
	}
	r.last = now
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), r.s.cfg.WriteTimeout)
	err := r.sess.SetActivity(ctx, a, idle)
	if err != nil {
		// Not retried: the next change is recorded, and a session that
		// ended needs nothing.
		lvl := slog.LevelError
		if errors.Is(err, presence.ErrNotFound) || errors.Is(err, presence.ErrClosed) {
			lvl = slog.LevelDebug
		}
		r.s.log.LogAttrs(ctx, lvl, "middleware: set activity",
			slog.String("client_id", r.sess.ClientID()), slog.String("session_id", r.sess.ID()),
			slog.String("activity", string(a)), slog.Any("err", err))
	}
	cancel()

	r.mu.Lock()
	r.sent = a
	if !r.done && r.want != r.sent {
		r.timer = time.AfterFunc(activityGap, r.flush)
	} else {
		r.busy = false
	}
	r.mu.Unlock()
}

// stop ends the reporter: a change waiting for its gap is dropped.
func (r *reporter) stop() {
	r.mu.Lock()
	r.done = true
	if r.timer != nil && r.timer.Stop() {
		r.timer = nil
		r.busy = false
	}
	r.mu.Unlock()
}

// activityMessage handles a text message that starts with ActivityPrefix:
// it records the report, or closes the connection with 1008 "bad state".
func (c *Conn) activityMessage(data []byte) {
	a, idle, err := parseActivity(string(data))
	if err != nil {
		c.s.log.LogAttrs(c.ctx, slog.LevelWarn, "middleware: bad activity message",
			slog.String("client_id", c.clientID), slog.String("remote_addr", c.ws.NetConn().RemoteAddr().String()), slog.Any("err", err))
		c.closeWith(&CloseError{Code: ClosePolicy, Text: "bad state", Reason: presence.ReasonClosed}, false)
		return
	}
	if c.act == nil {
		c.act = newReporter(c.s, c.sess, "")
	}
	c.act.report(a, idle)
}
