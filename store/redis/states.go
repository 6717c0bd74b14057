package redis

import (
	"context"
	"fmt"

	"github.com/vigilhq/vigil/presence"
)

var _ presence.StateStore = (*Store)(nil)

// activityArg is an activity as the scripts take it: "away", or ” for
// active.
func activityArg(a presence.Activity) string {
	if a == presence.ActivityAway {
		return "away"
	}
	return ""
}

// SetActivity implements presence.StateStore: one script call (rooms.lua),
// which, like Join, writes the session back first if Redis lost it.
func (s *Store) SetActivity(ctx context.Context, a presence.SessionActivity) ([]presence.Event, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("redis: set activity: %w", err)
	}
	st, evs, err := s.roomCall(ctx, roomsOpActivity, a.ClientID, a.SessionID, "", "", "", a)
	return evs, s.roomErr("set activity", a.ClientID, a.SessionID, "", st, err)
}
