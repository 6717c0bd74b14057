package middleware

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// IdentifyHeader returns an Identify function that reads the client ID from
// the request header name. Browsers cannot set headers on a WebSocket, so
// use it for non-browser clients or behind a proxy that sets the header
// after authenticating the request.
func IdentifyHeader(name string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		v := r.Header.Get(name)
		if v == "" {
			return "", fmt.Errorf("%w: header %s", ErrNoIdentity, name)
		}
		return v, nil
	}
}

// IdentifyQuery returns an Identify function that reads the client ID from
// the query parameter name. Anyone can put any ID in a URL: use it for demos
// and trusted networks, or for an ID the app has already authenticated.
func IdentifyQuery(name string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		v := queryValue(r.URL.RawQuery, name)
		if v == "" {
			return "", fmt.Errorf("%w: query parameter %s", ErrNoIdentity, name)
		}
		return v, nil
	}
}

// IdentifyCookie returns an Identify function that reads the client ID from
// the cookie name.
func IdentifyCookie(name string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			return "", fmt.Errorf("%w: cookie %s", ErrNoIdentity, name)
		}
		return c.Value, nil
	}
}

// IdentifyContext returns an Identify function that reads the client ID from
// the request context value under key, as put there by the app's
// authentication middleware. The value must be a string or a
// fmt.Stringer.
func IdentifyContext(key any) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		var v string
		switch x := r.Context().Value(key).(type) {
		case string:
			v = x
		case fmt.Stringer:
			v = x.String()
		}
		if v == "" {
			return "", fmt.Errorf("%w: context value %v", ErrNoIdentity, key)
		}
		return v, nil
	}
}

// queryValue returns the first value of key in a raw query, unescaped, or ""
// when it is missing or badly escaped. Unlike url.ParseQuery it stops at the
// first match and allocates only for the value it returns.
func queryValue(rawQuery, key string) string {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		// Compare the key as url.ParseQuery would: decoded, so "+" is a
		// space even when it spells the wanted key literally.
		if strings.ContainsAny(k, "%+") {
			if uk, err := url.QueryUnescape(k); err != nil || uk != key {
				continue
			}
		} else if k != key {
			continue
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			return ""
		}
		return uv
	}
	return ""
}
