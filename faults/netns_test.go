//go:build faults && linux

package faults

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"testing"
)

// link is a cable between the test's network namespace (the host side,
// where in-process servers listen) and a namespace of its own (where helper
// processes run, with `ip netns exec`): a veth pair with a /30 on it.
type link struct {
	ns           string
	hostIf, nsIf string
	hostIP, nsIP string
}

// newLink creates the namespace and the veth pair; both go when the test
// ends. It fails the test when the machine cannot create them.
func newLink(t testing.TB) *link {
	t.Helper()
	requireRoot(t)
	requireBin(t, "ip")
	requireBin(t, "tc")
	ns := uniq("vgf")
	sfx := ns[3:]
	o3, o4 := rand.IntN(256), 4*rand.IntN(64)
	l := &link{
		ns: ns, hostIf: "vgh" + sfx, nsIf: "vgn" + sfx,
		hostIP: fmt.Sprintf("10.213.%d.%d", o3, o4+1), nsIP: fmt.Sprintf("10.213.%d.%d", o3, o4+2),
	}
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("this machine cannot create a network namespace (ip netns add: %v: %s); the pulled-cable fault needs one", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", l.hostIf).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	run(t, "ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", l.nsIf, "netns", ns)
	run(t, "ip", "addr", "add", l.hostIP+"/30", "dev", l.hostIf)
	run(t, "ip", "link", "set", l.hostIf, "up")
	run(t, "ip", "-n", ns, "addr", "add", l.nsIP+"/30", "dev", l.nsIf)
	run(t, "ip", "-n", ns, "link", "set", l.nsIf, "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return l
}

// direction names the packets a link drops: those leaving its host end
// (server to client, when the server listens on the host side) or its
// namespace end (client to server), or both.
type direction int

const (
	toNS     direction = 1 << iota // leaving the host end: server → client
	toHost                         // leaving the namespace end: client → server
	bothWays = toNS | toHost
)

func (d direction) String() string {
	switch d {
	case toNS:
		return "server→client"
	case toHost:
		return "client→server"
	case bothWays:
		return "both ways"
	}
	return fmt.Sprintf("direction(%d)", int(d))
}

// drop drops every packet leaving the ends of direction d (a pfifo queue of
// length 0; the kernel here has no netem), while both TCP stacks keep their
// connections open and retransmit in vain. ARP goes too, as with a real
// break.
func (l *link) drop(t testing.TB, d direction) {
	t.Helper()
	if d&toNS != 0 {
		run(t, "tc", "qdisc", "add", "dev", l.hostIf, "root", "pfifo", "limit", "0")
	}
	if d&toHost != 0 {
		run(t, "ip", "netns", "exec", l.ns, "tc", "qdisc", "add", "dev", l.nsIf, "root", "pfifo", "limit", "0")
	}
}

// restore undoes drop(d).
func (l *link) restore(t testing.TB, d direction) {
	t.Helper()
	if d&toNS != 0 {
		run(t, "tc", "qdisc", "del", "dev", l.hostIf, "root")
	}
	if d&toHost != 0 {
		run(t, "ip", "netns", "exec", l.ns, "tc", "qdisc", "del", "dev", l.nsIf, "root")
	}
}

// cut pulls the cable: every packet leaving either end is dropped.
func (l *link) cut(t testing.TB) {
	t.Helper()
	l.drop(t, bothWays)
}

// mend plugs the cable back in.
func (l *link) mend(t testing.TB) {
	t.Helper()
	l.restore(t, bothWays)
}
