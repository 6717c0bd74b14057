package presence

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIDLen is the longest client or session ID, in bytes.
const MaxIDLen = 256

// ValidateID checks a client or session ID: 1 to MaxIDLen bytes of valid
// UTF-8 with no control characters. It is the one check every part of vigil
// applies to IDs, so that an ID accepted anywhere is safe in every store's
// keys, in logs and in JSON. The error wraps ErrInvalidID.
func ValidateID(id string) error {
	if len(id) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidID, len(id), MaxIDLen)
	}
	for i, r := range id {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(id[i:]); size <= 1 {
				return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrInvalidID, i)
			}
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: control character at byte %d", ErrInvalidID, i)
		}
	}
	return nil
}
