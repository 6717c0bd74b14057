package presence

import "errors"

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
