package presence

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is: stores and the Tracker wrap them
// with the operation and key.
var (
	// ErrInvalidID reports a client or session ID that ValidateID rejects.
	ErrInvalidID = errors.New("presence: invalid id")
	// ErrInvalidArgument reports any other argument out of range, such as
	// a non-positive lease or page size, or an unreadable cursor.
	ErrInvalidArgument = errors.New("presence: invalid argument")
	// ErrLimit reports that a store's cap on clients or sessions is reached.
	ErrLimit = errors.New("presence: limit reached")
	// ErrTooManySessions reports that a client already holds
	// Config.MaxSessionsPerClient live sessions across every node sharing
	// the Store (Lease.MaxSessions); the session was not recorded. It wraps
	// ErrLimit, so code that handles ErrLimit handles it too; match it
	// first to tell the per-client cap from a Store's capacity.
	ErrTooManySessions = fmt.Errorf("%w: too many sessions of one client", ErrLimit)
	// ErrNotFound reports an unknown client or session.
	ErrNotFound = errors.New("presence: not found")
	// ErrClosed reports a call on a closed Tracker or Store.
	ErrClosed = errors.New("presence: closed")
)

// permanent reports whether err is one a retry cannot fix.
func permanent(err error) bool {
	return errors.Is(err, ErrInvalidID) || errors.Is(err, ErrInvalidArgument) ||
		errors.Is(err, ErrLimit) || errors.Is(err, ErrClosed)
}
