package middleware

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// origin is a normalised web origin: lower-case scheme and host, explicit
// port.
type origin struct{ scheme, host, port string }

func (o origin) String() string { return o.scheme + "://" + net.JoinHostPort(o.host, o.port) }

// parseOrigin parses "scheme://host[:port]" (an Origin header or an
// AllowedOrigins entry). ws and wss count as http and https. Paths, user
// info, queries and fragments are refused, and so is "null".
func parseOrigin(s string) (origin, bool) {
	if len(s) > 2048 {
		return origin{}, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return origin{}, false
	}
	o := origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	switch o.scheme {
	case "ws":
		o.scheme = "http"
	case "wss":
		o.scheme = "https"
	}
	if o.host == "" {
		return origin{}, false
	}
	if o.port == "" {
		switch o.scheme {
		case "http":
			o.port = "80"
		case "https":
			o.port = "443"
		default:
			return origin{}, false
		}
	}
	return o, true
}

// requestOrigin is the origin the request was made to: its scheme (https
// when it arrived over TLS) and its Host header.
func requestOrigin(r *http.Request) (origin, bool) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	if host == "" {
		return origin{}, false
	}
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return origin{scheme: scheme, host: strings.ToLower(strings.Trim(host, "[]")), port: port}, true
}

// originChecker decides whether a request's Origin is acceptable.
type originChecker struct {
	skip    bool
	allowed []origin
}

func newOriginChecker(cfg Config) originChecker {
	oc := originChecker{skip: cfg.InsecureSkipOriginCheck}
	for _, s := range cfg.AllowedOrigins {
		o, _ := parseOrigin(s) // validated by withDefaults
		oc.allowed = append(oc.allowed, o)
	}
	return oc
}

// check reports whether r may proceed: it has no Origin header (not a
// browser), its Origin is the request's own origin (scheme, host and port),
// or it is in the allow-list.
func (oc originChecker) check(r *http.Request) bool {
	if oc.skip {
		return true
	}
	hs := r.Header.Values("Origin")
	if len(hs) == 0 {
		return true
	}
	if len(hs) > 1 {
		return false
	}
	o, ok := parseOrigin(hs[0])
	if !ok {
		return false // includes "null": sandboxed frames, file: pages
	}
	if self, ok := requestOrigin(r); ok && o == self {
		return true
	}
	for _, a := range oc.allowed {
		if o == a {
			return true
		}
	}
	return false
}
