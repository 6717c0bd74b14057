// Package faults is vigil's disconnect suite: tests that break connections
// for real (a proxy that cuts quiet WebSockets, a pulled cable between two
// network namespaces and one that loses a single direction, a node killed
// with SIGKILL, one of three nodes behind nginx drained with SIGTERM under
// a few hundred clients, redis-server killed, paused and failed over, a
// Redis Cluster failing over, nodes whose clocks are 30 s off) and feed
// the server hostile input, then check what vigil promises. The
// well-behaved clients are vigil's Go client (package client) and the
// crashed and drained nodes are the chat demo (examples/chat), so the suite
// proves what we ship. docs/RELIABILITY.md lists each fault, the promise,
// the test that proves it and the figure it measured.
//
// The tests carry the build tag faults and need root, nginx (the address in
// VIGIL_NGINX_ADDR), redis-server and redis-sentinel; ./scripts/test
// installs and starts what is missing. With the tag set and a prerequisite
// missing, a test fails and says which; it never skips.
//
//	./scripts/test                                    # everything
//	go test -race -tags faults -run Cable ./faults/   # one fault
package faults
