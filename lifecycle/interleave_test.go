package lifecycle

import (
	"flag"
	"os"
	"strconv"
	"testing"
	"time"
)

// The interleaving test's size: SWARMVAULT_INTERLEAVE_STEPS steps in all
// (default 20,000, a few seconds), over seeds from SWARMVAULT_SEED (default:
// the time) on; each seed a run of 2,000 steps.
var interleaveSeed = flag.Uint64("seed", 0, "first seed of TestInterleavings (0: from SWARMVAULT_SEED, else the time)")

// regressionSeeds failed once; each is run first, every time.
var regressionSeeds = []uint64{1796123350704633538, 1796122892912124825, 1796122828695931184, 1796122778389495469, 1796122738606149056, 1796122739538441865, 1796122696985251431, 1796122660470964404, 1796122027592909153, 1796121975978002140}

// TestInterleavings runs seeded random schedules of task starts and ends,
// repeated requests, leadership moving (A→B→A between two of a manager's
// rounds), Vault and Docker failing, KV versions written on a skewed clock
// and services rolled, against the real leader side over fakes, and checks
// after every step that:
//   - no credential of a task that has not ended is revoked, nor expires;
//   - every credential of an ended task is revoked within two clean rounds
//     of the leader after its end (and its record) became visible;
//   - after a clean round the leader holds the record of every running
//     task: none is lost across leadership changes;
//   - no service is forced again before swarm started the update forced
//     before (one rollout per change).
//
// A failure prints its seed; SWARMVAULT_SEED=<seed> runs it again, and it
// belongs in regressionSeeds.
func TestInterleavings(t *testing.T) {
	steps := 20000
	if s := os.Getenv("SWARMVAULT_INTERLEAVE_STEPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("SWARMVAULT_INTERLEAVE_STEPS=%s: %v", s, err)
		}
		steps = n
	}
	const perSeed = 2000
	first := *interleaveSeed
	if s := os.Getenv("SWARMVAULT_SEED"); first == 0 && s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SWARMVAULT_SEED=%s: %v", s, err)
		}
		first = n
	}
	if first == 0 {
		first = uint64(time.Now().UnixNano())
	}
	seeds := append([]uint64{}, regressionSeeds...)
	for i := 0; i < (steps+perSeed-1)/perSeed; i++ {
		seeds = append(seeds, first+uint64(i))
	}
	t.Logf("seeds %d.. (%d steps each; SWARMVAULT_SEED=<seed> runs one again)", first, perSeed)
	total := 0
	for _, seed := range seeds {
		w := newWorld(seed)
		for range perSeed {
			w.step()
			total++
			if len(w.violations) > 0 {
				t.Fatalf("seed %d, step %d: the promises broke (SWARMVAULT_SEED=%d go test -run TestInterleavings ./lifecycle/ runs it again):\n%s\n%s",
					seed, total, seed, w.failures(), w.summary())
			}
		}
		if testing.Verbose() {
			t.Logf("seed %d: %s", seed, w.summary())
		}
	}
	t.Logf("%d steps over %d seeds, no promise broken", total, len(seeds))
}
