package presence

// SameStripe reports whether clients a and b share a stripe of t (see
// order.go), for tests that hold one client's stripe with a call of
// another.
func SameStripe(t *Tracker, a, b string) bool { return t.stripe(a) == t.stripe(b) }
