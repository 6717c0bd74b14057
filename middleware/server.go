package middleware

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/presence"
)

// Server adds connection heartbeats, deadlines and presence to an HTTP
// application: WebSocket endpoints (WebSocket, Attach), HTTP-heartbeat
// endpoints and middleware (HeartbeatEndpoint, LeaveEndpoint,
// TrackRequests), status endpoints (OnlineEndpoint, PresenceEndpoint) and
// metrics (MetricsHandler); Mount registers them all, with a Feed and the
// browser script, in one call. Sessions are kept in the Tracker passed to
// New.
//
// A Server starts one goroutine, the ping scheduler, when its first
// WebSocket connection opens; Shutdown stops it. A Server is safe for
// concurrent use; use New to make one.
type Server struct {
	tr      *presence.Tracker
	cfg     Config
	log     *slog.Logger
	origins originChecker
	up      websocket.Upgrader
	// ownReader is the size of the read buffer Upgrade makes for gorilla
	// (see hijacker), or 0 when gorilla makes its own.
	ownReader int
	readers   sync.Pool // *bufio.Reader of ownReader bytes, lent to connections while they read
	epoch     time.Time // monotonic origin of now()
	pongMsg   []byte
	cuts      cutDetector       // proxycut.go
	obs       presence.Observer // tr.Observer(): the Tracker's Recorder, then Config.Observer
	sched     *wheel
	rooms     bool // the Tracker's Store keeps rooms
	states    bool // activity reports are recorded: the Store keeps them, Config allows them

	// mu guards the fields below.
	mu        sync.Mutex
	conns     map[*Conn]struct{}
	perClient map[string]int // WebSocket connections plus HTTP sessions
	httpSess  map[httpKey]*httpSession
	draining  bool
	feeds     []*Feed        // made by Mount, closed by Shutdown
	wg        sync.WaitGroup // connections, from reserve to finish

	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error
}

// New returns a Server that records presence in tr. It checks cfg (see
// Config) against tr's configuration and fails with ErrInvalidConfig.
func New(tr *presence.Tracker, cfg Config) (*Server, error) {
	if tr == nil {
		return nil, fmt.Errorf("%w: nil tracker", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults(tr.Config())
	if err != nil {
		return nil, err
	}
	s := &Server{
		tr:           tr,
		cfg:          cfg,
		log:          cfg.Logger,
		origins:      newOriginChecker(cfg),
		epoch:        time.Now(),
		pongMsg:      []byte(cfg.AppPong),
		conns:        make(map[*Conn]struct{}),
		perClient:    make(map[string]int),
		httpSess:     make(map[httpKey]*httpSession),
		shutdownDone: make(chan struct{}),
	}
	if cfg.ReadBufferSize > minOwnReader {
		// Upgrade gives gorilla a reader of this size through the
		// hijacker (ownReader), which gorilla then uses as it is when its
		// own ReadBufferSize is zero.
		s.ownReader = cfg.ReadBufferSize
	}
	s.up = websocket.Upgrader{
		ReadBufferSize:   cfg.ReadBufferSize - s.ownReader,
		WriteBufferPool:  writePool,
		HandshakeTimeout: cfg.WriteTimeout,
		// The Origin was checked before Upgrade, by s.origins.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			code := CodeInternal
			switch status {
			case http.StatusBadRequest:
				code = CodeBadHandshake
			case http.StatusMethodNotAllowed:
				code = CodeMethodNotAllowed
			case http.StatusForbidden:
				code = CodeOriginNotAllowed
			}
			s.refuse(w, r, status, code, plain(reason))
		},
	}
	s.obs = tr.Observer()
	s.sched = newWheel(s)
	s.rooms = tr.HasRooms()
	s.states = tr.HasStates() && !cfg.DisableActivity
	if cfg.Rooms != nil && !s.rooms {
		return nil, fmt.Errorf("%w: config Rooms needs a Tracker whose Store keeps rooms (a presence.RoomStore: store/memory, store/redis): %w",
			ErrInvalidConfig, errors.ErrUnsupported)
	}
	return s, nil
}

// MustNew is New that panics on error, for setup code.
func MustNew(tr *presence.Tracker, cfg Config) *Server {
	s, err := New(tr, cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// Config returns the Server's configuration, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Tracker returns the Tracker the Server records presence in.
func (s *Server) Tracker() *presence.Tracker { return s.tr }

// writePool lends write buffers to connections only while they write, so
// idle connections hold none.
var writePool = &sync.Pool{}

// now is the time since the Server started, on the monotonic clock.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

// Handler is the application's side of one WebSocket connection. It runs on
// the connection's only goroutine, which is also the one that reads: it
// must call c.Receive in a loop until it fails, because reading is what
// processes pongs, close frames and application pings. A Handler that stops
// reading for PingInterval+PongTimeout has its connection dropped as dead.
// ctx is cancelled when the connection starts closing; the Handler should
// then return promptly. When it returns, the connection is closed (1000
// unless it was already closing) and the session ends.
type Handler func(ctx context.Context, c *Conn)

// discard is the Handler of a presence-only endpoint.
func discard(ctx context.Context, c *Conn) {
	for {
		if _, err := c.Receive(ctx); err != nil {
			return
		}
	}
}

// WebSocket returns the handler of a WebSocket endpoint. For each request it
// checks the Origin (403), identifies the client (401 without identity, 400
// for an invalid ID), applies MaxConnsPerClient (429) and Shutdown (503),
// upgrades, opens a presence session, and returns from the HTTP handler; h
// then runs on the connection's own goroutine. When the Tracker has a
// presence.Config.MaxSessionsPerClient, the session opens before the
// upgrade instead, so that a client over it is answered 429 with
// Retry-After (and a closed Tracker 503) rather than upgraded and closed;
// h then runs on the connection's own goroutine. A nil h gives a
// presence-only endpoint that reads and discards application messages.
func (s *Server) WebSocket(h Handler) http.Handler {
	if h == nil {
		h = discard
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveWS(w, r, h) })
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request, h Handler) {
	ownEndpoint(r)
	if r.Method != http.MethodGet {
		s.refuseMethod(w, r, "GET")
		return
	}
	if !s.origins.check(r) {
		s.refuseOrigin(w, r)
		return
	}
	id, status, err := s.identify(r)
	if err != nil {
		s.refuseIdentity(w, r, status, err)
		return
	}
	rooms, code, err := s.roomsFor(r, id)
	if err != nil {
		s.refuseRooms(w, r, id, code, err)
		return
	}
	if err := s.reserve(id); err != nil {
		s.refuseReserve(w, r, err)
		return
	}
	// With a cluster-wide cap the session is opened before the upgrade, so
	// that the Store's refusal can still be answered 429; its OnGone reaches
	// the Conn once there is one. Without a cap nothing can refuse a
	// session for this client alone, and the session opens after the
	// upgrade, as a failed handshake then leaves no Online/Offline pair.
	var (
		sess  *presence.Session
		early *lateGone
	)
	if s.tr.Config().MaxSessionsPerClient > 0 {
		early = &lateGone{}
		sess, err = s.tr.Connect(r.Context(), id, rooms.options(early.gone))
		if err != nil {
			s.release(id)
			s.refuseSession(w, r, err)
			return
		}
	}
	hj := &hijacker{ResponseWriter: w, readSize: s.ownReader, readers: &s.readers}
	ws, err := s.up.Upgrade(hj, r, nil)
	if err != nil {
		if sess != nil {
			_ = sess.End(context.WithoutCancel(r.Context()), presence.ReasonClosed)
		}
		s.release(id) // gorilla has answered
		return
	}
	c := s.newConn(ws, id, false)
	c.br = hj.br
	if early != nil {
		early.attach(c)
	} else {
		sess, err = s.tr.Connect(r.Context(), id, rooms.options(c.sessionGone))
	}
	if err != nil {
		code, text := CloseInternal, "presence"
		switch {
		case errors.Is(err, presence.ErrClosed):
			code, text = CloseGoingAway, "shutdown"
		case errors.Is(err, presence.ErrLimit):
			code, text = CloseTryLater, "limit"
		case errors.Is(err, presence.ErrInvalidID), errors.Is(err, presence.ErrInvalidArgument):
			code, text = ClosePolicy, "invalid room" // Config.Rooms' answer was checked: not reached
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "middleware: session refused",
			slog.String("client_id", id), slog.Any("err", err))
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(s.cfg.controlTimeout()))
		_ = ws.Close()
		s.release(id)
		return
	}
	c.sess = sess
	if s.cfg.ConnContext != nil {
		c.ctx = s.cfg.ConnContext(c.ctx, r)
	}
	s.register(c)
	go c.run(h)
}

// identify runs Config.Identify and validates the ID; on error it returns the
// HTTP status to answer.
func (s *Server) identify(r *http.Request) (string, int, error) {
	id, err := s.cfg.Identify(r)
	if err != nil {
		if errors.Is(err, presence.ErrInvalidID) {
			return "", http.StatusBadRequest, err
		}
		return "", http.StatusUnauthorized, err
	}
	if err := presence.ValidateID(id); err != nil {
		return "", http.StatusBadRequest, err
	}
	return id, 0, nil
}

// reserve counts a connection of client id that is about to open. It fails
// with ErrDraining or ErrTooManyConns. A successful reserve must be followed
// by release or by a registered connection's finish.
func (s *Server) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return ErrDraining
	}
	if err := s.admit(id); err != nil {
		return err
	}
	s.perClient[id]++
	s.wg.Add(1)
	return nil
}

// admit checks the per-client cap. s.mu must be held.
func (s *Server) admit(id string) error {
	if max := s.cfg.MaxConnsPerClient; max > 0 && s.perClient[id] >= max {
		return ErrTooManyConns
	}
	return nil
}

func (s *Server) release(id string) {
	s.mu.Lock()
	s.uncount(id)
	s.mu.Unlock()
	s.wg.Done()
}

// uncount forgets one connection or session of id. s.mu must be held.
func (s *Server) uncount(id string) {
	if n := s.perClient[id] - 1; n > 0 {
		s.perClient[id] = n
	} else {
		delete(s.perClient, id)
	}
}

func (s *Server) register(c *Conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	draining := s.draining
	s.mu.Unlock()
	s.obs.ConnOpened(presence.TransportWS)
	if draining { // Shutdown started while we upgraded
		c.closeAsync(&CloseError{Code: CloseGoingAway, Text: "shutdown", Reason: presence.ReasonShutdown})
		return
	}
	s.sched.add(c)
}

func (s *Server) unregister(c *Conn) {
	s.sched.remove(c)
	s.mu.Lock()
	delete(s.conns, c)
	s.uncount(c.clientID)
	s.mu.Unlock()
	s.wg.Done()
}

// refuseSession answers, before any upgrade, a Connect that failed: 429 over
// the Tracker's MaxSessionsPerClient, 503 for a closed Tracker or a full
// Store, 500 otherwise.
func (s *Server) refuseSession(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, presence.ErrTooManySessions):
		w.Header().Set("Retry-After", s.retryAfter())
		s.refuseTooManySessions(w, r)
	case errors.Is(err, presence.ErrClosed), errors.Is(err, presence.ErrLimit):
		w.Header().Set("Retry-After", s.retryAfter())
		s.refuse(w, r, http.StatusServiceUnavailable, CodeUnavailable, "presence is unavailable: "+plain(err))
	default:
		s.refuse(w, r, http.StatusInternalServerError, CodeInternal, plain(err))
	}
}

// refuseTooManySessions answers 429 for a client over the Tracker's
// MaxSessionsPerClient.
func (s *Server) refuseTooManySessions(w http.ResponseWriter, r *http.Request) {
	s.refuse(w, r, http.StatusTooManyRequests, CodeTooManyConns,
		"the client holds "+strconv.Itoa(s.tr.Config().MaxSessionsPerClient)+" live sessions across all nodes, the most presence.Config.MaxSessionsPerClient allows")
}

// lateGone holds a session's OnGone until the Conn it must close exists:
// the session of a capped WebSocket opens before the upgrade.
type lateGone struct {
	mu     sync.Mutex
	c      *Conn
	reason *presence.Reason // gone before attach
}

func (g *lateGone) gone(r presence.Reason) {
	g.mu.Lock()
	c := g.c
	if c == nil {
		g.reason = &r
	}
	g.mu.Unlock()
	if c != nil {
		c.sessionGone(r)
	}
}

// attach passes to c the OnGone calls from now on, and one that came before.
func (g *lateGone) attach(c *Conn) {
	g.mu.Lock()
	g.c = c
	r := g.reason
	g.mu.Unlock()
	if r != nil {
		c.sessionGone(*r)
	}
}

func (s *Server) refuseReserve(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Retry-After", s.retryAfter())
	if errors.Is(err, ErrDraining) {
		s.refuse(w, r, http.StatusServiceUnavailable, CodeDraining, "the server is shutting down; retry after Retry-After, on another node if there is one")
		return
	}
	s.refuseTooMany(w, r)
}

// refuseTooMany answers 429 for a client over MaxConnsPerClient.
func (s *Server) refuseTooMany(w http.ResponseWriter, r *http.Request) {
	s.refuse(w, r, http.StatusTooManyRequests, CodeTooManyConns,
		"the client holds "+strconv.Itoa(s.cfg.MaxConnsPerClient)+" connections and HTTP sessions on this node, the most Config.MaxConnsPerClient allows")
}

func (s *Server) retryAfter() string {
	secs := (s.cfg.RetryAfter + time.Second - 1) / time.Second
	return strconv.Itoa(max(1, int(secs)))
}

// minOwnReader is the size above which gorilla reads through the
// bufio.Reader it finds in the hijacked ReadWriter, when the Upgrader's
// ReadBufferSize is zero (gorilla's server.go).
const minOwnReader = 256

// hijacker lets gorilla (which type-asserts http.Hijacker) upgrade through
// ResponseWriter wrappers that only expose Unwrap, such as loggers and
// tracing middleware: it reaches the connection through
// http.ResponseController.
//
// With readSize set, it also hands gorilla a reader of that size in place
// of net/http's (4 KiB, which then goes with the request), and keeps it in
// br: the connection's reader waits for the socket to become readable only
// when that buffer is empty (Conn.waitIdle). The reader comes from readers,
// the Server's pool, where idle connections lend theirs: the buffer an
// upgraded connection holds until its first wait is one that an idle
// connection gave back, and a ramp of new connections makes no buffer per
// connection, neither garbage nor a pool that grows with them until the
// next GC. When the client sent data before the handshake's answer, it
// hands on net/http's reader, which gorilla refuses.
type hijacker struct {
	http.ResponseWriter
	readSize int
	readers  *sync.Pool // *bufio.Reader of readSize bytes
	br       *bufio.Reader
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || h.readSize == 0 || brw.Reader.Buffered() > 0 {
		return nc, brw, err
	}
	if r, ok := h.readers.Get().(*bufio.Reader); ok {
		r.Reset(nc)
		h.br = r
	} else {
		h.br = bufio.NewReaderSize(nc, h.readSize)
	}
	brw.Reader = h.br
	return nc, brw, nil
}

func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
