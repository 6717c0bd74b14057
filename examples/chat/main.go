// Command chat is vigil's demo: a chat page where each browser tab picks a
// name and sees, live, who is online and who is in each of its rooms.
//
//	go run ./examples/chat
//
// then open http://localhost:8080 in two tabs. README.md in this directory
// documents the flags, routes and log lines, which are a stable contract:
// other tools drive the demo through them.
package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil/client/js"
	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
	redisstore "github.com/vigilhq/vigil/store/redis"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed static
var static embed.FS

type options struct {
	addr, store, redisURL, redisCluster, redisPrefix, nodeID, logFormat      string
	logLevel, debugAddr                                                      string
	pingInterval, pongTimeout, idleTimeout, grace, drainWindow, reclaimAfter time.Duration
	awayAfter                                                                time.Duration
	maxConnsPerClient                                                        int
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", ":8080", "listen address (port 0 picks a free port; the log says which)")
	flag.StringVar(&o.store, "store", "memory", "presence store: memory or redis (with -redis-url)")
	flag.StringVar(&o.redisURL, "redis-url", "", "Redis URL for -store redis, e.g. redis://localhost:6379/0")
	flag.StringVar(&o.redisCluster, "redis-cluster", "", "comma-separated addresses of Redis Cluster nodes for -store redis, instead of -redis-url")
	flag.StringVar(&o.redisPrefix, "redis-prefix", redisstore.DefaultPrefix, "key namespace in Redis for -store redis; nodes that share presence use the same one")
	flag.StringVar(&o.nodeID, "node-id", "", "node ID, stable across restarts (default: host name)")
	flag.DurationVar(&o.reclaimAfter, "redis-reclaim-after", redisstore.DefaultReclaimAfter, "with -store redis: how long a transition may wait for its node's hooks before another node delivers it")
	flag.DurationVar(&o.pingInterval, "ping-interval", 25*time.Second, "protocol ping interval; HTTP clients beat this often")
	flag.DurationVar(&o.pongTimeout, "pong-timeout", 20*time.Second, "wait for a frame after a ping; TTL is ping-interval + pong-timeout")
	flag.DurationVar(&o.idleTimeout, "idle-timeout", 0, "close connections without a chat message for this long (0: off)")
	flag.DurationVar(&o.grace, "grace", 5*time.Second, "how long an ended session lingers before its client goes offline (negative: none)")
	flag.DurationVar(&o.drainWindow, "drain-window", 5*time.Second, "on shutdown, spread the 1001 closes over this window")
	flag.DurationVar(&o.awayAfter, "away-after", 60*time.Second, "the page reports its user away after being hidden this long (0: never)")
	flag.IntVar(&o.maxConnsPerClient, "max-conns-per-client", 0, "connections plus HTTP sessions per client (0: no cap)")
	flag.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	flag.StringVar(&o.debugAddr, "debug-addr", "", "serve net/http/pprof on this separate address (default: off)")
	flag.Parse()

	log, err := newLogger(o.logFormat, o.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("chat: exit", "event", "error", "err", err)
		os.Exit(1)
	}
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("chat: -log-level %q: %w", level, err)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	}
	return nil, fmt.Errorf("chat: -log-format %q: want text or json", format)
}

// openStore returns the presence store the flags ask for, and what to close
// when done with it.
func openStore(o options, log *slog.Logger) (presence.Store, func(), error) {
	switch o.store {
	case "memory":
		s, err := memory.New(memory.Config{})
		return s, func() {}, err
	case "redis":
		if (o.redisURL == "") == (o.redisCluster == "") {
			return nil, nil, errors.New("chat: -store redis needs one of -redis-url and -redis-cluster")
		}
		// go-redis logs failed dials through a logger of its own; keep
		// them in ours, so -log-format json stays one object per line.
		goredis.SetLogger(redisLogger{log})
		var rdb goredis.UniversalClient
		if o.redisCluster != "" {
			rdb = goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: strings.Split(o.redisCluster, ",")})
		} else {
			opts, err := goredis.ParseURL(o.redisURL)
			if err != nil {
				return nil, nil, fmt.Errorf("chat: -redis-url: %w", err)
			}
			rdb = goredis.NewClient(opts)
		}
		s, err := redisstore.New(rdb, redisstore.Config{Prefix: o.redisPrefix, ReclaimAfter: o.reclaimAfter, Logger: log})
		if err != nil {
			rdb.Close()
			return nil, nil, err
		}
		// Closing the Store hands the buckets it swept to the other nodes
		// at once (see "Background work" in store/redis).
		return s, func() { _ = s.Close(); rdb.Close() }, nil
	}
	return nil, nil, fmt.Errorf("chat: -store %q: want memory or redis", o.store)
}

// redisLogger passes go-redis's own log lines to the demo's logger.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "err", fmt.Sprintf(format, v...))
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	store, closeStore, err := openStore(o, log)
	if err != nil {
		return err
	}
	defer closeStore()
	tr, err := presence.New(ctx, store, presence.Config{
		Node:   o.nodeID,
		TTL:    o.pingInterval + o.pongTimeout,
		Grace:  o.grace,
		Logger: log,
	})
	if err != nil {
		return err
	}
	logEvent := func(ctx context.Context, ev presence.Event) {
		if !log.Enabled(ctx, slog.LevelInfo) {
			return // -log-level warn: no line to build
		}
		attrs := []slog.Attr{
			slog.String("event", ev.Transition.String()),
			slog.String("client", ev.ClientID),
			slog.String("client_id", ev.ClientID),
			slog.String("reason", string(ev.Reason)),
			slog.String("node", ev.Node),
			slog.Uint64("seq", ev.Seq),
		}
		if ev.Room != "" {
			attrs = append(attrs, slog.String("room", ev.Room))
		}
		log.LogAttrs(ctx, slog.LevelInfo, ev.Transition.String(), attrs...)
	}
	tr.OnOnline(logEvent)
	tr.OnOffline(logEvent)
	tr.OnAway(logEvent)
	tr.OnBack(logEvent)
	tr.OnJoin("", logEvent)
	tr.OnLeave("", logEvent)
	tr.OnUpdate("", logEvent)

	// Rooms need a store that keeps them (presence.RoomStore). Over one
	// that does not, the demo still runs: ?room= is ignored and
	// GET /rooms/{room} answers 501.
	rooms := queryRooms
	if _, ok := store.(presence.RoomStore); !ok {
		rooms = nil
		log.Warn("store keeps no rooms: room parameters are ignored", "event", "no_rooms", "store", o.store)
	}
	vs, err := middleware.New(tr, middleware.Config{
		Identify:          middleware.IdentifyQuery("id"), // a demo: real apps use their auth
		PingInterval:      o.pingInterval,
		PongTimeout:       o.pongTimeout,
		IdleTimeout:       o.idleTimeout,
		DrainWindow:       o.drainWindow,
		MaxConnsPerClient: o.maxConnsPerClient,
		Rooms:             rooms,
		Logger:            log,
	})
	if err != nil {
		_ = tr.Close(context.Background())
		return err
	}
	hub := &hub{conns: make(map[*middleware.Conn][]string)}
	// The page's online list: a snapshot, then each online and offline; its
	// member lists: GET /rooms/{room}, then each join, leave and update.
	feed, err := middleware.NewFeed(tr, middleware.FeedConfig{Logger: log})
	if err != nil {
		_ = tr.Close(context.Background())
		return err
	}
	defer feed.Close()

	index, err := pageHTML(o.awayAfter)
	if err != nil {
		_ = tr.Close(context.Background())
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", index)
	mux.Handle("GET /ws", vs.WebSocket(hub.serve))
	mux.Handle("/rooms/{room}", vs.RoomEndpoint())
	mux.Handle("GET /presence", vs.OnlineEndpoint())
	// The /presence/… routes carry no method: their handlers answer a
	// wrong one with 405 and Allow. With "POST /presence/heartbeat", a GET
	// fell through to /presence/{id} and got 404 "unknown client"; and a
	// method-less route beside "GET /presence/{id}" would conflict on the
	// ServeMux, so {id} has none either (as Server.Mount registers them).
	mux.Handle("/presence/{id}", vs.PresenceEndpoint())
	mux.Handle("/presence/feed", feed)
	mux.Handle("/presence/heartbeat", vs.HeartbeatEndpoint())
	mux.Handle("/presence/leave", vs.LeaveEndpoint())
	mux.Handle("GET /vigil/", js.Handler())
	mux.Handle("GET /vigil.js", js.Handler())
	mux.Handle("GET /metrics", vs.MetricsHandler())

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		_ = tr.Close(context.Background())
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if o.debugAddr != "" {
		dbg, err := serveDebug(o.debugAddr, log)
		if err != nil {
			ln.Close()
			_ = tr.Close(context.Background())
			return err
		}
		defer dbg.Close()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("listening", "event", "listening", "addr", ln.Addr().String(), "node", tr.Node(),
		"ping_interval", o.pingInterval, "pong_timeout", o.pongTimeout, "ttl", o.pingInterval+o.pongTimeout, "grace", o.grace, "away_after", o.awayAfter)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		_ = feed.Close()
		_ = vs.Shutdown(context.Background())
		_ = tr.Close(context.Background())
		return err
	}
	log.Info("shutting down", "event", "shutdown", "node", tr.Node())
	sctx, cancel := context.WithTimeout(context.Background(), o.drainWindow+10*time.Second)
	defer cancel()
	// http.Server.Shutdown leaves hijacked WebSockets alone: the vigil
	// Server drains them (1001, spread over -drain-window), then the
	// Tracker hands presence over through Grace.
	_ = feed.Close() // ends the feed streams, which hs.Shutdown would wait for
	go func() { _ = hs.Shutdown(sctx) }()
	errs := []error{vs.Shutdown(sctx), tr.Close(sctx)}
	log.Info("stopped", "event", "stopped", "node", tr.Node())
	return errors.Join(errs...)
}

// awayAfterMeta is the page's setting of -away-after, which pageHTML
// replaces with the flag's value in milliseconds.
const awayAfterMeta = `<meta name="away-after" content="60000">`

// pageHTML returns the handler of the page, with -away-after in it.
func pageHTML(awayAfter time.Duration) (http.Handler, error) {
	raw, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(raw, []byte(awayAfterMeta)) {
		return nil, errors.New("chat: static/index.html lacks " + awayAfterMeta)
	}
	ms := max(awayAfter.Milliseconds(), 0)
	html := bytes.Replace(raw, []byte(awayAfterMeta), fmt.Appendf(nil, `<meta name="away-after" content="%d">`, ms), 1)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(html))
	}), nil
}

func serveDebug(addr string, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("debug listening", "event", "debug_listening", "addr", ln.Addr().String())
	return srv, nil
}

// defaultRoom is the room of a connection or HTTP session that names none.
const defaultRoom = "general"

// queryRooms is the demo's middleware.Config.Rooms: the session joins the
// rooms of the request's "room" query parameters (none: general), with
// metadata {"name": the "name" parameter, or else the client ID}. A real
// app decides here which rooms the client may join.
func queryRooms(r *http.Request, clientID string) (middleware.SessionRooms, error) {
	q := r.URL.Query()
	rooms := q["room"]
	if len(rooms) == 0 {
		rooms = []string{defaultRoom}
	}
	name := q.Get("name")
	if name == "" {
		name = clientID
	}
	return middleware.SessionRooms{Rooms: rooms, Meta: nameMeta(name)}, nil
}

// nameMeta returns {"name": name} in JSON. It runs for every connection;
// encoding/json's reflection cost the demo 7% of its CPU while clients
// connected by the thousand a second, so it is written out.
func nameMeta(name string) []byte {
	b := append(make([]byte, 0, len(name)+12), `{"name":"`...)
	for _, r := range name { // a byte that is not UTF-8 comes as U+FFFD
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, `"}`...)
}

// hub broadcasts each chat message to the connections that share a room
// with its sender's.
type hub struct {
	mu    sync.Mutex
	conns map[*middleware.Conn][]string // the rooms of each, sorted
}

// chatMessage is what the server sends for each chat message.
type chatMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
	TS   int64  `json:"ts"`
	// Rooms are the rooms of the sender's connection, the message went to.
	Rooms []string `json:"rooms"`
}

func (h *hub) serve(ctx context.Context, c *middleware.Conn) {
	// The connection joined its rooms as it opened (queryRooms); the
	// demo joins none later, so they are the rooms of all its messages.
	rooms := c.Session().Rooms()
	h.mu.Lock()
	h.conns[c] = rooms
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	}()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			return
		}
		if m.Type != middleware.Text {
			continue
		}
		data, _ := json.Marshal(chatMessage{From: c.ClientID(), Text: string(m.Data), TS: time.Now().UnixMilli(), Rooms: rooms})
		h.mu.Lock()
		for other, theirs := range h.conns {
			if shareRoom(rooms, theirs) {
				_ = other.Send(middleware.Text, data) // a slow reader is closed with 4001, not waited for
			}
		}
		h.mu.Unlock()
	}
}

// shareRoom reports whether two sorted lists of rooms have one in common.
// Connections in no room (over a store without rooms) share the one
// room-less chat.
func shareRoom(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			return true
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return false
}
