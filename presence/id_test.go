package presence_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/vigilhq/vigil/presence"
)

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"alice", true},
		{"user:42", true},
		{"{tag}*?[]", true},
		{"名前", true},
		{"\uFFFD", true}, // a real replacement character is valid UTF-8
		{strings.Repeat("x", presence.MaxIDLen), true},
		{"", false},
		{strings.Repeat("x", presence.MaxIDLen+1), false},
		{"a\x00b", false},
		{"line\nbreak", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"\xff", false},
		{"half\xe2\x82", false},
	} {
		err := presence.ValidateID(tc.id)
		if tc.ok && err != nil {
			t.Errorf("ValidateID(%q) = %v, want nil", tc.id, err)
		}
		if !tc.ok && !errors.Is(err, presence.ErrInvalidID) {
			t.Errorf("ValidateID(%q) = %v, want ErrInvalidID", tc.id, err)
		}
	}
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"alice", "", "a\x00", "\xff\xfe", "名前", "{x}:y", strings.Repeat("z", 257)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := presence.ValidateID(id)
		valid := len(id) >= 1 && len(id) <= presence.MaxIDLen && utf8.ValidString(id) &&
			strings.IndexFunc(id, unicode.IsControl) < 0
		if valid != (err == nil) {
			t.Fatalf("ValidateID(%q) = %v, want valid=%v", id, err, valid)
		}
		if err != nil && !errors.Is(err, presence.ErrInvalidID) {
			t.Fatalf("error %v does not wrap ErrInvalidID", err)
		}
	})
}
