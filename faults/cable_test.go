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

// R2: a pulled cable. The server runs in-process on the host side of a veth
// pair, the client (faultclient: vigil's Go client, package client) in a
// namespace of its own. A blip shorter than the heartbeat changes nothing;
// then every packet is dropped both ways while both TCP stacks keep the
// connection open. The server must drop the session and fire Offline
// (reason expired) within PingInterval + PongTimeout + one sweep step; the
// client must see the server dead within its own promise (PingInterval +
// PongTimeout of the last frame, plus its check period); and when the
// cable is back the client reconnects and is online again, with strictly
// alternating transitions.
//
// timing: dead-peer detection on both sides: server PingInterval +
// PongTimeout and the client's own, against TTL; Sweep ≪ TTL.
func TestPulledCable(t *testing.T) {
	t.Parallel()
	const (
		ping, pong = time.Second, time.Second
		sweep      = 100 * time.Millisecond
		// The client's heartbeat; its check period is a quarter of the
		// shorter of the two (client package doc, Timeouts).
		clientPing, clientPong = time.Second, time.Second
		clientCheck            = clientPing / 4
		// slack covers hook dispatch, the pipe from the helper process and
		// the scheduler of a loaded 2-core machine under the race detector.
		slack = 250 * time.Millisecond
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
		"-url", "ws://"+l.hostIP+":"+port+"/ws?id=cable",
		"-ping-interval", clientPing.String(), "-pong-timeout", clientPong.String(), "-dial-timeout", "1s",
		"-backoff-base", "100ms", "-backoff-max", "500ms")
	state := func(s string) func(procLine) bool { return func(p procLine) bool { return p.str("state") == s } }
	cl.next(10*time.Second, "client open", state("open"))
	n.rec.wait(t, 0, 5*time.Second, "online", func(ev stamped) bool { return ev.Transition == presence.Online })

	// A blip well under the heartbeat: TCP retransmits, nothing happens.
	l.cut(t)
	time.Sleep(300 * time.Millisecond) // the fault under test is the length of the outage
	l.mend(t)
	cl.quiet(2*(ping+pong), "after a 300ms blip the client reported")
	if got := n.rec.count("cable", 0); got != 1 {
		t.Fatalf("after a 300ms blip: %d transitions, want only the first online: %v", got, n.rec.all())
	}

	// Pull the cable for good.
	mark := len(n.rec.all())
	l.cut(t)
	cutAt := time.Now()
	off := n.rec.wait(t, mark, ping+pong+sweep+2*time.Second, "offline after the cut", func(ev stamped) bool {
		return ev.ClientID == "cable" && ev.Transition == presence.Offline
	})
	serverDetect := off.At.Sub(cutAt)
	if off.Reason != presence.ReasonExpired {
		t.Errorf("offline reason %q, want %q", off.Reason, presence.ReasonExpired)
	}
	if bound := ping + pong + sweep + slack; serverDetect > bound {
		t.Errorf("offline %v after the cut, want within PingInterval+PongTimeout+SweepInterval = %v (+%v slack)", serverDetect, ping+pong+sweep, slack)
	}
	if got := n.srv.Stats().HeartbeatTimeouts; got != 1 {
		t.Errorf("%d heartbeat timeouts, want 1", got)
	}
	clientBound := clientPing + clientPong + clientCheck
	dead := cl.next(clientBound+2*time.Second, "client leaves the open state", func(p procLine) bool {
		return p.str("from") == "open"
	})
	clientDetect := dead.At.Sub(cutAt)
	if dead.str("state") != "reconnecting" || !dead.flag("timeout") {
		t.Fatalf("client: %v, want it reconnecting after a heartbeat timeout (client.ErrTimeout)", dead.M)
	}
	if clientDetect > clientBound+slack {
		t.Errorf("client saw the server dead %v after the cut, want within PingInterval+PongTimeout+check period = %v (+%v slack)", clientDetect, clientBound, slack)
	}

	// Keep it unplugged a while: reconnect attempts fail, nothing
	// connects, presence stays offline.
	time.Sleep(2 * time.Second) // the fault under test is the length of the outage
	if online(t, n.tr, "cable") {
		t.Fatal("client online while the cable is out")
	}
	l.mend(t)
	mendAt := time.Now()
	up := cl.next(5*time.Second, "client reconnected", state("open"))
	on := n.rec.wait(t, mark, 5*time.Second, "online after the cable is back", func(ev stamped) bool {
		return ev.ClientID == "cable" && ev.Transition == presence.Online
	})
	if !online(t, n.tr, "cable") {
		t.Fatal("client not online after reconnecting")
	}
	checkAlternation(t, n.rec.all())
	if got := n.rec.count("cable", presence.Offline); got != 1 {
		t.Errorf("%d offline events, want exactly 1", got)
	}
	t.Logf("FIGURE cable: server offline %v after the cut (bound %v); client (package client) saw the server dead %v after the cut (bound %v); reconnected %v and online %v after the mend",
		serverDetect.Round(time.Millisecond), ping+pong+sweep, clientDetect.Round(time.Millisecond), clientBound,
		up.At.Sub(mendAt).Round(time.Millisecond), on.At.Sub(mendAt).Round(time.Millisecond))
}
