package chaos

import (
	"strings"
	"testing"
	"time"
)

// One seed gives one schedule; another seed another.
func TestAScheduleIsItsSeeds(t *testing.T) {
	a, b := Describe(Schedule(7, 20*time.Minute, Kinds)), Describe(Schedule(7, 20*time.Minute, Kinds))
	if a != b {
		t.Fatalf("seed 7 gave two schedules:\n%s\n%s", a, b)
	}
	if c := Describe(Schedule(8, 20*time.Minute, Kinds)); c == a {
		t.Errorf("seeds 7 and 8 gave the same schedule")
	}
}

// Over many seeds: every episode is one or two faults of kinds that may
// overlap, inside the campaign (after the warm-up, none starting in the
// tail), in order with a quiet time between; every kind is drawn.
func TestSchedulesKeepTheirBounds(t *testing.T) {
	seen := map[Kind]int{}
	pairs := 0
	for seed := range uint64(500) {
		length := 3*time.Minute + time.Duration(seed%5)*4*time.Minute
		var prevEnd time.Duration
		for i, e := range Schedule(seed, length, Kinds) {
			if len(e) < 1 || len(e) > 2 {
				t.Fatalf("seed %d episode %d: %d faults", seed, i, len(e))
			}
			first := e[0]
			if first.At < Warmup || first.At+Tail >= length {
				t.Errorf("seed %d episode %d starts at %s of %s", seed, i, first.At, length)
			}
			if i > 0 && first.At-prevEnd < QuietLo {
				t.Errorf("seed %d episode %d starts %s after the last heal, want at least %s", seed, i, first.At-prevEnd, QuietLo)
			}
			for _, f := range e {
				seen[f.Kind]++
				d, lasts := Lasting[f.Kind]
				if lasts && (f.For < d[0] || f.For > d[1]) || !lasts && f.For != 0 {
					t.Errorf("seed %d: %s lasts %s", seed, f.Kind, f.For)
				}
				if f.Kind == PluginKill && !f.Leader {
					t.Errorf("seed %d: a plugin kill off the leader", seed)
				}
			}
			if len(e) == 2 {
				pairs++
				if e[0].Kind.Group() == e[1].Kind.Group() {
					t.Errorf("seed %d episode %d: %s and %s overlap", seed, i, e[0].Kind, e[1].Kind)
				}
				if e[1].At < first.At || e[1].At > first.At+first.For/2 {
					t.Errorf("seed %d episode %d: the second fault starts at %s, the first at %s for %s", seed, i, e[1].At, first.At, first.For)
				}
			}
			prevEnd = e.End()
		}
	}
	for _, k := range Kinds {
		if seen[k] == 0 {
			t.Errorf("no schedule of 500 seeds has a %s", k)
		}
	}
	if pairs == 0 {
		t.Error("no episode of two faults in 500 seeds")
	}
}

// A schedule of some kinds draws only those; of one group's kinds, no
// episode pairs two of them; of none, nothing.
func TestASchedulesKindsAreTheOnesGiven(t *testing.T) {
	kinds, err := ParseKinds("partition, engine-kill")
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(50) {
		for _, e := range Schedule(seed, 20*time.Minute, kinds) {
			if len(e) != 1 || e[0].Kind != Partition && e[0].Kind != EngineKill {
				t.Fatalf("seed %d: %v", seed, e)
			}
		}
	}
	if none, _ := ParseKinds("none"); len(Schedule(1, 20*time.Minute, none)) != 0 {
		t.Error("CHAOS_FAULTS=none drew faults")
	}
	if _, err := ParseKinds("partition,sealed"); err == nil || !strings.Contains(err.Error(), `no fault kind "sealed" (kinds: engine-kill, `) {
		t.Errorf("an unknown kind: %v", err)
	}
}
