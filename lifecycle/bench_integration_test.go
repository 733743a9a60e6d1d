//go:build integration

package lifecycle

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	return l
}

// BenchmarkTaskStart is what the lifecycle adds to a task start that
// issues credentials: the look-up of a record (there is none) and the
// write of the new one. The Docker call that tells the task's state is the
// fake's here (on the leader it is one call to the local engine). For scale,
// in the same run: the token create such a task start makes anyway.
func BenchmarkTaskStart(b *testing.B) {
	bd := newBed(b, false, nil)
	client, ct := bd.counted(b)
	ctx := context.Background()
	seq := 0 // task IDs stay unique across the runs of b.N
	// Steady state: the leader has read STATE_PATH, so only the write is
	// a Vault call. In a new leader's first interval the look-up is one more.
	for _, loaded := range []bool{true, false} {
		b.Run(fmt.Sprintf("record/loaded=%v", loaded), func(b *testing.B) {
			store := NewStore(client, bd.mount+"/state")
			tr := NewTracker(&fakeSwarm{tasks: map[string]swarm.TaskState{}}, store, quietLogger())
			if loaded {
				if _, _, err := tr.load(ctx, direct, 8); err != nil {
					b.Fatal(err)
				}
			}
			if err := store.Check(ctx); err != nil {
				b.Fatal(err)
			}
			ct.calls.Store(0)
			b.ResetTimer()
			for range b.N {
				seq++
				req := request(fmt.Sprintf("t%024d", seq), "db")
				if err := tr.Admit(ctx, req, true); err != nil {
					b.Fatal(err)
				}
				if err := tr.Issued(ctx, req, provider.Credentials{Accessor: "acc", TokenTTL: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ct.calls.Load())/float64(b.N), "vault-calls/op")
		})
	}
	b.Run("baseline-token-create", func(b *testing.B) {
		for i := range b.N {
			s, err := bd.root.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h",
				Metadata: map[string]string{"service": "app", "task_id": fmt.Sprintf("t%024d", i), "secret": "db"}})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			bd.root.Auth().Token().RevokeAccessor(s.Auth.Accessor)
			b.StartTimer()
		}
	})
}

// BenchmarkRound is one leader round over n running tasks holding a token
// each: quiet (nothing due: the usual round) and due (every token renewed:
// the first round of a new leader).
func BenchmarkRound(b *testing.B) {
	for _, n := range []int{100, 1000} {
		for _, due := range []bool{false, true} {
			b.Run(fmt.Sprintf("tasks=%d/due=%v", n, due), func(b *testing.B) {
				bd := newBed(b, false, nil)
				client, ct := bd.counted(b)
				sw := &fakeSwarm{tasks: map[string]swarm.TaskState{}}
				tr := NewTracker(sw, NewStore(client, bd.mount+"/state"), quietLogger())
				for i := range n {
					id := fmt.Sprintf("r%024d", i)
					sw.tasks[id] = swarm.TaskState{State: "running"}
					accessor := "none"
					if due {
						accessor = bd.taskToken(b, id, "1h").Accessor
					}
					tr.byKey[key(id, "db")] = &tracked{Record: Record{TaskID: id, Secret: "db", Credentials: provider.Credentials{Accessor: accessor, TokenTTL: time.Hour}},
						verified: true, tokenUntil: time.Now().Add(time.Hour)}
				}
				loop := NewLoop(tr, sw, NewVaultCredentials(client), NewRollouts(sw, quietLogger()), quietLogger())
				ctx := context.Background()
				if err := loop.Round(ctx); err != nil { // the check and the load
					b.Fatal(err)
				}
				ct.calls.Store(0)
				b.ResetTimer()
				for range b.N {
					if due {
						b.StopTimer()
						for _, h := range tr.byKey {
							h.tokenUntil = time.Time{}
						}
						b.StartTimer()
					}
					if err := loop.Round(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(ct.calls.Load())/float64(b.N), "vault-calls/op")
			})
		}
	}
}

// BenchmarkTakeover is a new leader's first round over n records another
// leader wrote, none due: the list of STATE_PATH, a read and an accessor
// lookup per record (which tells it is its task's, and how long it has
// left), and no renewal.
func BenchmarkTakeover(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			bd := newBed(b, false, nil)
			client, ct := bd.counted(b)
			sw := &fakeSwarm{tasks: map[string]swarm.TaskState{}}
			store := NewStore(client, bd.mount+"/state")
			ctx := context.Background()
			for i := range n {
				id := fmt.Sprintf("k%024d", i)
				sw.tasks[id] = swarm.TaskState{State: "running"}
				a := bd.taskToken(b, id, "1h")
				if err := store.Put(ctx, Record{TaskID: id, Secret: "db", Credentials: provider.Credentials{Accessor: a.Accessor, TokenTTL: time.Hour}, Issued: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
			ct.calls.Store(0)
			b.ResetTimer()
			for range b.N {
				tr := NewTracker(sw, store, quietLogger())
				loop := NewLoop(tr, sw, NewVaultCredentials(client), NewRollouts(sw, quietLogger()), quietLogger())
				if err := loop.Round(ctx); err != nil {
					b.Fatal(err)
				}
				if tr.Len() != n {
					b.Fatalf("%d held after the takeover, want %d", tr.Len(), n)
				}
			}
			b.ReportMetric(float64(ct.calls.Load())/float64(b.N), "vault-calls/op")
		})
	}
}
