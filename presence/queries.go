package presence

import (
	"context"
	"fmt"
	"time"
)

// MaxLookup is the most client IDs one Lookup accepts.
const MaxLookup = 1000

// Presence reports whether clientID is online and when it was last seen.
// It fails with ErrNotFound for a client the Store never saw or has
// forgotten.
func (t *Tracker) Presence(ctx context.Context, clientID string) (Presence, error) {
	ps, err := t.Lookup(ctx, []string{clientID})
	if err != nil {
		return Presence{}, err
	}
	if ps[0].LastSeen.IsZero() {
		return ps[0], fmt.Errorf("presence: client %q: %w", clientID, ErrNotFound)
	}
	return ps[0], nil
}

// Lookup reports the presence of up to MaxLookup clients in one Store call,
// in the order given. A client never seen has a zero LastSeen.
func (t *Tracker) Lookup(ctx context.Context, clientIDs []string) ([]Presence, error) {
	if len(clientIDs) > MaxLookup {
		return nil, fmt.Errorf("%w: %d ids in one lookup, more than %d", ErrInvalidArgument, len(clientIDs), MaxLookup)
	}
	for _, id := range clientIDs {
		if err := ValidateID(id); err != nil {
			return nil, fmt.Errorf("presence: lookup: %w", err)
		}
	}
	start := time.Now()
	ps, err := t.store.Lookup(ctx, clientIDs)
	t.observed("lookup", start, err)
	fillStates(ps)
	return ps, err
}

// Sessions lists the sessions of clientID on every node, ending ones
// included.
func (t *Tracker) Sessions(ctx context.Context, clientID string) ([]SessionInfo, error) {
	if err := ValidateID(clientID); err != nil {
		return nil, fmt.Errorf("presence: sessions: %w", err)
	}
	start := time.Now()
	ss, err := t.store.Sessions(ctx, clientID)
	t.observed("sessions", start, err)
	return ss, err
}

// List returns one page of at most limit online clients, from cursor (empty
// for the first page). Pass Page.Next to get the next page; it is empty after
// the last.
func (t *Tracker) List(ctx context.Context, cursor string, limit int) (Page, error) {
	if limit <= 0 {
		return Page{}, fmt.Errorf("%w: page limit %d", ErrInvalidArgument, limit)
	}
	start := time.Now()
	p, err := t.store.List(ctx, cursor, limit)
	t.observed("list", start, err)
	fillStates(p.Clients)
	return p, err
}

// Count returns the number of online clients, on all nodes.
func (t *Tracker) Count(ctx context.Context) (int, error) {
	start := time.Now()
	n, err := t.store.Count(ctx)
	t.observed("count", start, err)
	return n, err
}
