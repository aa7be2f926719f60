package oauth

import (
	"fmt"
	"slices"
)

// The default assurance ladder, weakest first (see DESIGN.md). Positions keep
// their meaning when the names are configured differently.
const (
	ACRPassword       = "urn:stepwise:acr:pwd"
	ACRPasskey        = "urn:stepwise:acr:passkey"
	ACRPhishingResist = "phr"
	ACRHardware       = "phrh"
)

// Level is a position on the ladder: 0 password, 1 passkey with presence,
// 2 user-verified passkey, 3 device-bound user-verified passkey.
type Level int

// The four rungs, by meaning.
const (
	LevelPassword Level = iota
	LevelPasskey
	LevelVerifiedPasskey
	LevelDeviceBoundPasskey
	levelCount
)

// Ladder maps acr values to levels. The zero value is not usable; build one
// with NewLadder or DefaultLadder.
type Ladder struct {
	names [levelCount]string
}

// DefaultLadder returns the ladder with the names from DESIGN.md.
func DefaultLadder() Ladder {
	return Ladder{names: [levelCount]string{ACRPassword, ACRPasskey, ACRPhishingResist, ACRHardware}}
}

// NewLadder builds a ladder from four distinct, non-empty names, weakest first.
func NewLadder(names []string) (Ladder, error) {
	if len(names) != int(levelCount) {
		return Ladder{}, fmt.Errorf("acr ladder: want %d values (password, passkey, verified passkey, device-bound passkey), got %d", levelCount, len(names))
	}
	var l Ladder
	for i, n := range names {
		if n == "" {
			return Ladder{}, fmt.Errorf("acr ladder: value %d is empty", i+1)
		}
		if slices.Contains(names[:i], n) {
			return Ladder{}, fmt.Errorf("acr ladder: %q appears twice", n)
		}
		l.names[i] = n
	}
	return l, nil
}

// Values returns the acr values, weakest first, for acr_values_supported.
func (l Ladder) Values() []string { return slices.Clone(l.names[:]) }

// Name returns the acr value of a level.
func (l Ladder) Name(level Level) string {
	if level < 0 || level >= levelCount {
		return ""
	}
	return l.names[level]
}

// Level returns the level of an acr value, and false when it is not on the ladder.
func (l Ladder) Level(acr string) (Level, bool) {
	for i, n := range l.names {
		if n == acr {
			return Level(i), true
		}
	}
	return 0, false
}

// Satisfies reports whether having meets want: the same rung or a higher one.
// Unknown values satisfy nothing and are satisfied by nothing.
func (l Ladder) Satisfies(have, want string) bool {
	h, ok1 := l.Level(have)
	w, ok2 := l.Level(want)
	return ok1 && ok2 && h >= w
}

// Weakest returns the lowest-ranked known value of acrs, which is the level a
// list of acr_values in order of preference demands (any listed level is
// acceptable). ok is false when none of them is on the ladder.
func (l Ladder) Weakest(acrs []string) (acr string, ok bool) {
	best := levelCount
	for _, a := range acrs {
		if lv, known := l.Level(a); known && lv < best {
			best = lv
		}
	}
	if best == levelCount {
		return "", false
	}
	return l.names[best], true
}

// Max returns the stronger of two acr values; unknown values lose.
func (l Ladder) Max(a, b string) string {
	la, oka := l.Level(a)
	lb, okb := l.Level(b)
	switch {
	case !oka:
		return b
	case !okb:
		return a
	case lb > la:
		return b
	}
	return a
}
