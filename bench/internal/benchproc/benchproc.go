//go:build linux

// Package benchproc holds what the bench commands (bench/compare,
// bench/scale) share to run the programs under test as processes: building
// them once, starting them with their output read line by line, and reading
// their figures from /proc and from Prometheus text pages.
package benchproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// HTTP keeps no idle connections, so the tools leave no goroutines behind.
var HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ).
const clockTick = 10 * time.Millisecond

// Build runs go build (without -race: the figures are those of a release
// build) for each package path, writing the binary to the file it maps to.
func Build(bins map[string]string) error {
	for pkg, out := range bins {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
	}
	return nil
}

// Proc is a started process whose standard output is read line by line.
type Proc struct {
	Cmd   *exec.Cmd
	lines chan string
	stdin io.WriteCloser
}

// Start starts cmd, which must have no Stdout nor Stdin of its own yet;
// its standard error goes to ours unless set.
func Start(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: cmd, lines: make(chan string, 16)}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p, nil
}

// Send writes one line to the process's standard input.
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Expect waits for the next output line that starts with prefix.
func (p *Proc) Expect(prefix string, timeout time.Duration) (string, error) {
	t := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("exited before %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line, nil
			}
		case <-t:
			return "", fmt.Errorf("no %q within %v", prefix, timeout)
		}
	}
}

// Poll returns the next output line that starts with prefix if one has
// come already, without waiting; lines before it without the prefix are
// dropped, as Expect drops them.
func (p *Proc) Poll(prefix string) (string, bool) {
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", false
			}
			if strings.HasPrefix(line, prefix) {
				return line, true
			}
		default:
			return "", false
		}
	}
}

// ReadLatencies appends to into the connect latencies bench/load wrote to
// path (its -latency file: microseconds, one a line).
func ReadLatencies(path string, into *[]time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		us, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		*into = append(*into, time.Duration(us)*time.Microsecond)
	}
	return sc.Err()
}

// Stop sends SIGTERM and waits up to timeout, then kills the process.
func (p *Proc) Stop(timeout time.Duration) {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-done
	}
	_ = p.stdin.Close()
}

// Kill kills the process with SIGKILL and waits for it.
func (p *Proc) Kill() {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Kill()
	_ = p.Cmd.Wait()
	_ = p.stdin.Close()
}

// WorkDir returns dir, or when it is empty a new temporary directory named
// after prefix, with the function that removes it (nothing for dir).
func WorkDir(dir, prefix string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// FreeAddr returns a loopback address with a port free at the time.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SaveURL writes the body of a GET of url to path.
func SaveURL(url, path string) error {
	resp, err := HTTP.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// WaitHTTP waits until a GET of url gets an answer.
func WaitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := HTTP.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up within %v: %w", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WSConns is the series of open WebSocket connections (docs/METRICS.md),
// which both the demo and bench/handwritten expose.
const WSConns = `vigil_connections{transport="ws"}`

// Scrape reads the samples of a Prometheus text page, keyed by name and
// labels.
func Scrape(url string) (map[string]int64, error) {
	resp, err := HTTP.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	m := make(map[string]int64)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			m[name] = int64(n)
		}
	}
	return m, sc.Err()
}

// RSSKiB is VmRSS of process pid, in KiB.
func RSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// CPUTime is the user plus system CPU time of process pid.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, state
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}

// ListenOverflows is the machine's count of connections its listeners'
// accept queues had no room for (TcpExt ListenOverflows in
// /proc/net/netstat). Each such dial waits for a SYN retransmission, a
// second or more: a step in connect latencies that is the server's accept
// loop falling behind, not its handshake.
func ListenOverflows() (int64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, err
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "ListenOverflows" {
				return strconv.ParseInt(values[j], 10, 64)
			}
		}
	}
	return 0, errors.New("benchproc: no TcpExt ListenOverflows in /proc/net/netstat")
}

// LoadAvg is the first three fields of /proc/loadavg.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Pct is the p-th percentile of sorted ds (nearest rank), in seconds with
// three decimals, or "–" for none.
func Pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f s", PctOf(ds, p).Seconds())
}

// PctOf is the p-th percentile of sorted ds (nearest rank); 0 for none.
func PctOf(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100
	i = min(max(i, 1), len(ds)) - 1
	return ds[i]
}
