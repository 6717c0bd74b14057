package middleware_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/middleware"
	"github.com/vigilhq/vigil/presence"
	"github.com/vigilhq/vigil/store/memory"
)

// A chat endpoint and every presence endpoint on net/http's ServeMux, with
// no adapter, and the shutdown wiring.
func Example() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tracker, err := presence.New(ctx, store, presence.Config{})
	if err != nil {
		log.Fatal(err)
	}
	tracker.OnOnline(func(ctx context.Context, ev presence.Event) { fmt.Println(ev.ClientID, "online") })
	vs, err := middleware.New(tracker, middleware.Config{
		Identify: middleware.IdentifyQuery("id"), // real apps: their auth (cookie, context)
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	// /presence/ws, /heartbeat, /leave, /feed, /vigil.js, /metrics, /presence and /presence/{id}
	mounted, err := vs.Mount(mux, "/presence", middleware.MountConfig{
		Handler: func(ctx context.Context, c *middleware.Conn) {
			for {
				m, err := c.Receive(ctx)
				if err != nil {
					return // the client left, timed out, went idle, or we shut down
				}
				_ = c.Send(m.Type, m.Data)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	hs := &http.Server{Addr: "127.0.0.1:0", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.ListenAndServe()

	// On SIGTERM: stop listening, drain WebSockets with 1001, hand presence
	// over through Grace.
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_ = mounted.Close() // ends the feed's streams, which hs.Shutdown would wait for
	go hs.Shutdown(sctx)
	_ = vs.Shutdown(sctx)
	_ = tracker.Close(sctx)
	// Output:
}

// Counting every successful request of a signed-in user as a beat, with the user ID
// the app's authentication middleware put in the request context.
func ExampleServer_TrackRequests() {
	type userKey struct{}
	store, _ := memory.New(memory.Config{})
	tracker, _ := presence.New(context.Background(), store, presence.Config{})
	defer tracker.Close(context.Background())
	vs := middleware.MustNew(tracker, middleware.Config{Identify: middleware.IdentifyContext(userKey{})})
	defer vs.Shutdown(context.Background())

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, "alice")))
		})
	}
	handler := auth(vs.TrackRequests(app))
	handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	n, _ := tracker.Count(context.Background())
	fmt.Println(n, "online")
	// Output: 1 online
}

// An existing gorilla handler keeps its Upgrader and read loop, and gets
// heartbeats, dead-peer detection and presence from Attach.
func ExampleServer_Attach() {
	store, _ := memory.New(memory.Config{})
	tracker, _ := presence.New(context.Background(), store, presence.Config{})
	defer tracker.Close(context.Background())
	vs := middleware.MustNew(tracker, middleware.Config{Identify: middleware.IdentifyQuery("id")})
	defer vs.Shutdown(context.Background())
	upgrader := websocket.Upgrader{}
	mux := http.NewServeMux()

	mux.HandleFunc("/legacy", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("id") // the app's own authentication
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c, err := vs.Attach(r, user, ws)
		if err != nil {
			ws.Close()
			return
		}
		for {
			typ, data, err := ws.ReadMessage()
			if err != nil {
				c.Finish(err)
				return
			}
			if !c.Received(typ, data) {
				continue
			}
			_ = c.Send(middleware.MessageType(typ), data)
		}
	})
	// Output:
}

func ExampleCloseError() {
	var err error = &middleware.CloseError{Code: middleware.CloseIdle, Text: "idle", Reason: presence.ReasonIdle}
	var ce *middleware.CloseError
	fmt.Println(errors.Is(err, middleware.ErrClosed), errors.As(err, &ce) && ce.Code == 4501)
	// Output: true true
}

// Rooms: each new session joins the rooms Config.Rooms names, with its
// metadata, as it opens; RoomEndpoint lists a room's members.
func ExampleConfig_rooms() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{}) // a presence.RoomStore
	tracker, err := presence.New(ctx, store, presence.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close(ctx)
	joined := make(chan presence.Event, 1)
	tracker.OnJoin("", func(ctx context.Context, ev presence.Event) { joined <- ev })
	vs, err := middleware.New(tracker, middleware.Config{
		Identify: middleware.IdentifyQuery("id"),
		Rooms: func(r *http.Request, clientID string) (middleware.SessionRooms, error) {
			// The app authorises: here every client is in the lobby.
			return middleware.SessionRooms{Rooms: []string{"lobby"}, Meta: []byte(`{"name":"Ada"}`)}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer vs.Shutdown(ctx)
	mux := http.NewServeMux()
	mux.Handle("/presence/heartbeat", vs.HeartbeatEndpoint())
	mux.Handle("/rooms/{room}", vs.RoomEndpoint())

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/presence/heartbeat?id=ada", nil))
	ev := <-joined
	fmt.Println(ev.Transition, ev.ClientID, ev.Room, string(ev.Meta))
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/rooms/lobby", nil))
	var page middleware.RoomPage
	json.NewDecoder(rec.Body).Decode(&page)
	for _, m := range page.Members {
		fmt.Println(m.ID, m.Sessions, m.State, string(m.Meta[len(m.Meta)-1]))
	}
	// Output:
	// join ada lobby {"name":"Ada"}
	// ada 1 online {"name":"Ada"}
}

// A room's coalesced feed: a snapshot of its members, then at most one diff
// per window with the latest state of each member that changed.
func ExampleFeed_room() {
	ctx := context.Background()
	store, _ := memory.New(memory.Config{})
	tracker, err := presence.New(ctx, store, presence.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer tracker.Close(ctx)
	feed, err := middleware.NewFeed(tracker, middleware.FeedConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer feed.Close()
	srv := httptest.NewServer(feed)
	defer srv.Close()
	ada, _ := tracker.Connect(ctx, "ada", presence.SessionOptions{Rooms: []string{"lobby"}, Meta: []byte(`{"name":"Ada"}`)})
	defer ada.End(ctx, presence.ReasonClosed)

	res, err := http.Get(srv.URL + "/?room=lobby") // as new PresenceFeed(url, {room: "lobby"})
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	next := func() (typ string, msg map[string]any) {
		for sc.Scan() {
			line := sc.Text()
			if t, ok := strings.CutPrefix(line, "event: "); ok {
				typ = t
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				json.Unmarshal([]byte(data), &msg)
				return typ, msg
			}
		}
		return "", nil
	}
	typ, snap := next()
	fmt.Println(typ, snap["scope"], snap["count"], snap["members"].([]any)[0].(map[string]any)["meta"])
	bob, _ := tracker.Connect(ctx, "bob", presence.SessionOptions{Rooms: []string{"lobby"}})
	defer bob.End(ctx, presence.ReasonClosed)
	typ, diff := next()
	m := diff["set"].([]any)[0].(map[string]any)
	fmt.Println(typ, diff["count"], m["id"], m["state"])
	// Output:
	// snapshot room 1 map[name:Ada]
	// diff 2 bob online
}
