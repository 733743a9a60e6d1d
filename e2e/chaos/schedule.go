// Package chaos draws the schedules of the Fault campaign (make chaos, the
// e2e package's TestChaos): episodes of one or two faults at a time, from a
// seed, so that a failing campaign's seed gives its Schedule again.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// A Schedule says what happens and when, relative to the campaign's start;
// which node "the leader" is, is found when the Fault is injected.

// Kind is a Fault the bed can inject and heal.
type Kind string

const (
	EngineKill   Kind = "engine-kill"   // a manager's dockerd SIGKILLed, started again at the heal
	Partition    Kind = "partition"     // a manager cut off from the others and from Vault, healed
	PluginKill   Kind = "plugin-kill"   // the leader's plugin SIGKILLed during a scale-up (the engine restarts it)
	VaultStop    Kind = "vault-stop"    // Vault SIGSTOPped, SIGCONTinued at the heal
	VaultRestart Kind = "vault-restart" // Vault restarted with its storage (and unsealed)
	VaultSeal    Kind = "vault-seal"    // Vault sealed, unsealed at the heal
	TokenRevoke  Kind = "token-revoke"  // every token of the plugins' AppRole logins revoked
	Quota        Kind = "quota-429"     // rate limit quotas on task token creation and lease renewal
	PGRestart    Kind = "pg-restart"    // PostgreSQL halted, started at the heal
)

// Kinds are the kinds a Schedule draws from, each as likely.
var Kinds = []Kind{EngineKill, Partition, PluginKill, VaultStop, VaultRestart,
	VaultSeal, TokenRevoke, Quota, PGRestart}

// Lasting is how long a kind lasts between injection and heal (min, max);
// a kind absent here is a single blow that heals by itself.
var Lasting = map[Kind][2]time.Duration{
	EngineKill: {8 * time.Second, 20 * time.Second},
	Partition:  {10 * time.Second, 25 * time.Second},
	VaultStop:  {5 * time.Second, 15 * time.Second},
	VaultSeal:  {5 * time.Second, 15 * time.Second},
	Quota:      {10 * time.Second, 20 * time.Second},
	PGRestart:  {5 * time.Second, 12 * time.Second},
}

// Group says which kinds exclude each other: two faults of one group never
// overlap (one manager down at a time keeps the quorum; one thing done to
// Vault at a time).
func (k Kind) Group() string {
	switch k {
	case EngineKill, Partition:
		return "node"
	case VaultStop, VaultRestart, VaultSeal:
		return "vault"
	}
	return string(k)
}

// OnNode tells whether the kind is done to one manager.
func (k Kind) OnNode() bool { return k.Group() == "node" || k == PluginKill }

// Fault is one Fault of a Schedule.
type Fault struct {
	Kind Kind
	// At is when it is injected, from the campaign's start; For is how
	// long until its heal (0: none needed).
	At, For time.Duration
	// Leader: done to the manager that leads when it is injected; else to
	// another (engine-kill, partition). A plugin kill is always the leader's.
	Leader bool
}

func (f Fault) String() string {
	s := fmt.Sprintf("%7s  %-13s", f.At.Round(time.Second), f.Kind)
	if f.Kind.OnNode() {
		who := "a follower"
		if f.Leader {
			who = "the leader"
		}
		s += " " + who
	}
	if f.For > 0 {
		s += fmt.Sprintf(" for %s", f.For.Round(time.Second))
	}
	return s
}

// Episode is one or two faults that overlap, then a quiet time in which
// the checker measures the recovery.
type Episode []Fault

// End is when the Episode's last Fault heals.
func (e Episode) End() time.Duration {
	var end time.Duration
	for _, f := range e {
		end = max(end, f.At+f.For)
	}
	return end
}

// Schedule timings: the workload runs alone first, episodes leave a quiet
// time after them, and none starts in the campaign's last minute.
const (
	Warmup  = 45 * time.Second
	QuietLo = 20 * time.Second
	QuietHi = 40 * time.Second
	Tail    = 60 * time.Second
)

// Schedule draws the episodes of a campaign of the given length from seed,
// of the given kinds (all: Kinds; none: the workload alone): each one or
// two faults (two with a chance of one in three, of kinds that may
// overlap), the second starting within the first half of the first.
func Schedule(seed uint64, length time.Duration, kinds []Kind) []Episode {
	if len(kinds) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	draw := func(at time.Duration, except string) (Fault, bool) {
		var from []Kind
		for _, k := range kinds {
			if k.Group() != except {
				from = append(from, k)
			}
		}
		if len(from) == 0 {
			return Fault{}, false
		}
		k := from[rng.IntN(len(from))]
		f := Fault{Kind: k, At: at, Leader: k == PluginKill || rng.IntN(2) == 0}
		if d, ok := Lasting[k]; ok {
			f.For = between(d[0], d[1])
		}
		return f, true
	}
	var out []Episode
	for at := Warmup; at+Tail < length; {
		first, _ := draw(at, "")
		e := Episode{first}
		if rng.IntN(3) == 0 {
			if second, ok := draw(at+between(0, first.For/2), first.Kind.Group()); ok {
				e = append(e, second)
			}
		}
		out = append(out, e)
		at = e.End() + between(QuietLo, QuietHi)
	}
	return out
}

// Describe prints a Schedule, one Fault a line, episodes apart.
func Describe(episodes []Episode) string {
	var b strings.Builder
	for i, e := range episodes {
		for j, f := range e {
			prefix := fmt.Sprintf("%3d ", i+1)
			if j > 0 {
				prefix = "  + "
			}
			b.WriteString(prefix + f.String() + "\n")
		}
	}
	return b.String()
}

// ParseKinds reads a comma list of kinds ("all": every kind; "none": no
// fault), as CHAOS_FAULTS gives it.
func ParseKinds(list string) ([]Kind, error) {
	switch strings.TrimSpace(list) {
	case "", "all":
		return Kinds, nil
	case "none":
		return nil, nil
	}
	var out []Kind
	for _, name := range strings.Split(list, ",") {
		k := Kind(strings.TrimSpace(name))
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("no fault kind %q (kinds: %s)", k, kindNames())
		}
		out = append(out, k)
	}
	return out, nil
}

func kindNames() string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
