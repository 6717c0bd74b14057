//go:build faults && linux

package faults

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// R3: one-way loss. The cable of TestPulledCable (server in-process on the
// host end of a veth pair, faultclient in a namespace of its own) drops the
// packets of one direction only: first server→client, then, once the path
// is back and the client online again, client→server. Each time the server
// must drop the session and fire one Offline (reason expired: no frame for
// PingInterval + PongTimeout, whatever TCP thinks), the Go client must drop
// the connection as dead within its own promise (PingInterval +
// PongTimeout of the last frame it received, plus its check period) and
// reconnect once the path is back; nothing may fire while the path is
// healthy, and the transitions alternate strictly.
//
// Which side notices first depends on the direction:
//
//   - server→client lost: the client receives nothing, so it sends its
//     application ping, which reaches the server and is a beat there (its
//     "pong" answer is lost). The client gives up PongTimeout after that
//     ping; the server only PingInterval + PongTimeout after it, so about
//     one client ping interval later than for a pulled cable. The client's
//     FIN never reaches the server: it waits behind the unacknowledged ping
//     in the client's TCP stack.
//   - client→server lost: the server gets no beat and drops the session at
//     PingInterval + PongTimeout of the last one. Its pings reach the client
//     until its TCP stack, whose segments are never acknowledged, falls
//     back to retransmitting the oldest one; its 4000 close frame waits
//     behind that. The client gives up by its own heartbeat, at most its
//     bound after the last ping it received, which the server sent before
//     dropping the session.
//
// timing: dead-peer detection on both sides: server PingInterval +
// PongTimeout and the client's own, against TTL; Sweep ≪ TTL; the client's
// PongTimeout shorter than the server's PingInterval + PongTimeout, which
// makes the client notice first when only server→client is lost.
func TestOneWayLoss(t *testing.T) {
	t.Parallel()
	const (
		ping, pong = time.Second, time.Second
		sweep      = 100 * time.Millisecond
		// The client's heartbeat; its check period is a quarter of the
		// shorter of the two (client package doc, Timeouts).
		clientPing, clientPong = time.Second, time.Second
		clientCheck            = clientPing / 4
		clientBound            = clientPing + clientPong + clientCheck
		// Reconnecting takes at most a failed dial (-dial-timeout) and a
		// backoff (-backoff-max) once the path is back.
		dialTimeout, backoffMax = time.Second, 500 * time.Millisecond
		// slack covers hook dispatch, the pipe from the helper process and
		// the scheduler of a loaded 2-core machine under the race detector.
		slack = 250 * time.Millisecond
		// hold is how long a healthy path is watched for a false Offline:
		// longer than a dead-peer deadline.
		hold = 2*(ping+pong) - time.Second
	)
	l := newLink(t)
	ln, err := net.Listen("tcp", l.hostIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	n := memNode(t, memory.Config{},
		presence.Config{TTL: 2500 * time.Millisecond, Grace: time.Second, SweepInterval: sweep},
		middleware.Config{PingInterval: ping, PongTimeout: pong}, ln)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	cl := startProc(t, "ip", "netns", "exec", l.ns, helperBin(t, "faultclient"),
		"-url", "ws://"+l.hostIP+":"+port+"/ws?id=oneway",
		"-ping-interval", clientPing.String(), "-pong-timeout", clientPong.String(),
		"-dial-timeout", dialTimeout.String(), "-backoff-base", "100ms", "-backoff-max", backoffMax.String())
	state := func(s string) func(procLine) bool { return func(p procLine) bool { return p.str("state") == s } }
	cl.next(10*time.Second, "client open", state("open"))
	n.rec.wait(t, 0, 5*time.Second, "online", func(ev stamped) bool { return ev.Transition == presence.Online })
	// A healthy path: pings both ways, nothing happens.
	cl.quiet(hold, "on a healthy path the client reported")
	if got := n.rec.count("", 0); got != 1 {
		t.Fatalf("on a healthy path: %d transitions, want only the first online: %v", got, n.rec.all())
	}

	type figure struct{ server, client, back time.Duration }
	figures := map[direction]figure{}
	for _, d := range []direction{toNS, toHost} {
		serverBound := ping + pong + sweep
		if d == toNS {
			// The client's application ping, sent up to clientPing +
			// clientCheck after its last frame (before the loss began),
			// reaches the server: a beat.
			serverBound += clientPing + clientCheck
		}
		// With client→server lost, the server's frames may reach the
		// client until the server drops the session.
		clientBoundCut := clientBound
		if d == toHost {
			clientBoundCut += ping + pong + sweep
		}
		mark := len(n.rec.all())
		before := n.srv.Stats()
		l.drop(t, d)
		cutAt := time.Now()

		off := n.rec.wait(t, mark, serverBound+2*time.Second, d.String()+": offline", func(ev stamped) bool {
			return ev.Transition == presence.Offline
		})
		serverDetect := off.At.Sub(cutAt)
		if off.Reason != presence.ReasonExpired {
			t.Errorf("%v: offline reason %q, want %q (no frame for PingInterval+PongTimeout)", d, off.Reason, presence.ReasonExpired)
		}
		if serverDetect > serverBound+slack {
			t.Errorf("%v: offline %v after the loss began, want within %v (+%v slack)", d, serverDetect, serverBound, slack)
		}
		dead := cl.next(clientBoundCut+2*time.Second, d.String()+": client leaves the open state", func(p procLine) bool {
			return p.str("from") == "open"
		})
		clientDetect := dead.At.Sub(cutAt)
		// Its own heartbeat (client.ErrTimeout), or the server's 4000 had it
		// got through.
		if dead.str("state") != "reconnecting" || !(dead.flag("timeout") || dead.M["code"] == float64(middleware.CloseTimeout)) {
			t.Errorf("%v: client: %v, want it reconnecting after a heartbeat timeout", d, dead.M)
		}
		if clientDetect > clientBoundCut+slack {
			t.Errorf("%v: client saw the connection dead %v after the loss began, want within %v (+%v slack)", d, clientDetect, clientBoundCut, slack)
		}
		after := n.srv.Stats()
		if got := after.HeartbeatTimeouts - before.HeartbeatTimeouts; got != 1 {
			t.Errorf("%v: %d heartbeat timeouts, want 1", d, got)
		}
		if d == toNS {
			if after.AppPings == before.AppPings {
				t.Errorf("%v: the client's application ping did not reach the server", d)
			}
			if clientDetect >= serverDetect {
				t.Errorf("%v: client noticed %v after the loss began, server %v: want the client first (its PongTimeout runs from its own ping, which the server counts as a beat)",
					d, clientDetect, serverDetect)
			}
		}

		// Keep the path broken a while: the client's attempts fail (its SYN
		// or the server's SYN-ACK is lost), nothing connects, presence
		// stays offline.
		time.Sleep(time.Second) // the fault under test is the length of the outage
		if online(t, n.tr, "oneway") {
			t.Fatalf("%v: client online while the path is broken", d)
		}
		if got := n.srv.Stats().Upgrades; got != before.Upgrades {
			t.Fatalf("%v: %d upgrades while the path is broken", d, got-before.Upgrades)
		}

		l.restore(t, d)
		mendAt := time.Now()
		up := cl.next(dialTimeout+backoffMax+5*time.Second, d.String()+": client reconnected", state("open"))
		on := n.rec.wait(t, mark, 5*time.Second, d.String()+": online after the path is back", func(ev stamped) bool {
			return ev.Transition == presence.Online
		})
		if back := on.At.Sub(mendAt); back > dialTimeout+backoffMax+slack {
			t.Errorf("%v: online %v after the path was back, want within a dial timeout and a backoff, %v (+%v slack)", d, back, dialTimeout+backoffMax, slack)
		}
		// Healthy again: nothing more happens.
		cl.quiet(hold, d.String()+": on the healthy path again the client reported")
		if got := n.rec.count("", 0) - mark; got != 2 {
			t.Fatalf("%v: %d transitions, want one offline and one online: %v", d, got, n.rec.all()[mark:])
		}
		if !online(t, n.tr, "oneway") {
			t.Fatalf("%v: client not online after reconnecting", d)
		}
		if s := n.sessions(); s != 1 {
			t.Fatalf("%v: server holds %d sessions after the reconnect, want 1", d, s)
		}
		figures[d] = figure{serverDetect, clientDetect, up.At.Sub(mendAt)}
	}
	checkAlternation(t, n.rec.all())
	if on, off := n.rec.count("oneway", presence.Online), n.rec.count("oneway", presence.Offline); on != 3 || off != 2 {
		t.Errorf("%d online and %d offline events, want 3 and 2", on, off)
	}
	a, b := figures[toNS], figures[toHost]
	t.Logf("FIGURE oneway: server→client lost: client dropped the connection %v after the loss began (bound %v), server Offline (expired) %v (bound %v); "+
		"client→server lost: server Offline (expired) %v (bound %v), client dropped the connection %v (bound %v); reconnected %v and %v after the path was back",
		a.client.Round(time.Millisecond), clientBound, a.server.Round(time.Millisecond), ping+pong+sweep+clientPing+clientCheck,
		b.server.Round(time.Millisecond), ping+pong+sweep, b.client.Round(time.Millisecond), clientBound+ping+pong+sweep,
		a.back.Round(time.Millisecond), b.back.Round(time.Millisecond))
}
