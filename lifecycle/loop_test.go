package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// scripted is a world without random events: each test says what happens.
func scripted(t *testing.T) (*world, *bytes.Buffer) {
	t.Helper()
	w := newWorld(1)
	w.hooked = true // no event from inside a call
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	for _, p := range w.procs {
		p.tracker.log, p.loop.log, p.rollouts.log, p.rot.log, p.watcher.log = log, log, log, log, log
	}
	t.Cleanup(func() {
		if len(w.violations) > 0 {
			t.Errorf("promises broken:\n%s", w.failures())
		}
	})
	return w, &logs
}

// lead makes manager i lead, and its watcher see it.
func (w *world) lead(i int) *proc {
	w.leader = i
	for _, p := range w.procs {
		p.term = p.watcher.poll(context.Background(), p.term)
	}
	return w.procs[i]
}

// serve starts a task of service on the leader and records its credential
// at once; it returns the task and the credential's accessor.
func (w *world) serve(t *testing.T, service string) (*wtask, string) {
	t.Helper()
	before := w.seq
	w.startTaskOf(service)
	task := w.tasks[taskName(before+1)]
	for i := 0; i < len(w.pending); {
		if strings.Contains(w.pending[i].what, "records") {
			w.run(i)
			continue
		}
		i++
	}
	return task, accessorOf(w, task.id)
}

func taskName(n int) string { return fmt.Sprintf("t%04d", n) }

func accessorOf(w *world, task string) string {
	for a, tok := range w.tokens {
		if tok.task == task {
			return a
		}
	}
	return ""
}

// Item 1: a task created after Docker built the task list, and served
// before the round looked at what it holds, is not in the list: its
// credential must not be taken for a task gone from the swarm.
func TestATaskStartedDuringTheListKeepsItsCredentials(t *testing.T) {
	w, _ := scripted(t)
	p := w.lead(0)
	var started *wtask
	w.duringList = func() { started, _ = w.serve(t, "s1") }
	if err := p.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := accessorOf(w, started.id)
	if w.tokens[a].revoked {
		t.Fatalf("the credential of task %s, started during the list, was revoked", started.id)
	}
	// The next round, which lists it, keeps it too; once it ends, it goes.
	w.now = w.now.Add(w.interval)
	if err := p.loop.Round(context.Background()); err != nil || w.tokens[a].revoked {
		t.Fatalf("next round: %v, revoked %v", err, w.tokens[a].revoked)
	}
	started.state = swarmtypes.TaskStateComplete
	if err := p.loop.Round(context.Background()); err != nil || !w.tokens[a].revoked {
		t.Fatalf("after its end: %v, revoked %v", err, w.tokens[a].revoked)
	}
}

// Item 2: records another manager writes while this one leads (a request
// of the old leader still under way, or leadership gone and back between
// two rounds, A→B→A) are renewed and revoked from the next round on.
func TestRecordsAnotherLeaderWritesArePickedUpAtTheNextRound(t *testing.T) {
	w, _ := scripted(t)
	a := w.lead(0)
	if err := a.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	// B leads for a moment and serves a task; A's watcher never sees it.
	w.leader = 1
	task, acc := w.serve(t, "s1")
	w.leader = 0
	if _, ok := a.tracker.byKey[key(task.id, "db")]; ok {
		t.Fatal("A holds B's record before any round")
	}
	task.state = swarmtypes.TaskStateRunning
	if err := a.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Held, and not looked up in Vault: its record says it is not due.
	if h, ok := a.tracker.byKey[key(task.id, "db")]; !ok || h.Accessor != acc {
		t.Fatalf("after a round, A holds %+v", h)
	}
	if w.lookups != 0 {
		t.Fatalf("A looked up %d tokens whose records say they are not due", w.lookups)
	}
	task.state = swarmtypes.TaskStateFailed
	if err := a.loop.Round(context.Background()); err != nil || !w.tokens[acc].revoked {
		t.Fatalf("B's credential of an ended task: %v, revoked %v", err, w.tokens[acc].revoked)
	}
}

// Item 3: the loop (credentials near their max TTL) and the rotator (a new
// KV version) both want service s2 rolled in one round: one forced update.
// Swarm clears the update status of a service it is asked to update, so
// until its updater starts the service looks settled.
func TestTheLoopAndTheRotatorRollAServiceOnce(t *testing.T) {
	w, _ := scripted(t)
	p := w.lead(0)
	task, _ := w.serve(t, "s2") // vault.rotate credentials, max TTL 16 intervals
	task.state = swarmtypes.TaskStateRunning
	// Renewed each round until the max TTL is in sight: the loop rolls s2.
	for range 16 {
		w.now = w.now.Add(w.interval)
		if err := p.loop.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
		if w.forced > 0 {
			break
		}
	}
	if w.forced != 1 {
		t.Fatalf("the loop forced s2 %d times, want 1", w.forced)
	}
	// A new KV version, a moment later, before swarm starts the update.
	w.kv = provider.Version{Number: 2, Created: w.now}
	w.now = w.now.Add(time.Second)
	if err := p.rot.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w.forced != 1 {
		t.Errorf("%d forced updates of s2, want 1", w.forced)
	}
}

// Docker down: nothing is revoked, but what is due is renewed.
func TestRenewalsGoOnWhileDockerIsDown(t *testing.T) {
	w, _ := scripted(t)
	p := w.lead(0)
	task, acc := w.serve(t, "s1")
	task.state = swarmtypes.TaskStateRunning
	until := w.tokens[acc].expires
	w.now = w.now.Add(7 * w.interval)
	w.dockerDown = w.now.Add(time.Hour)
	if err := p.loop.Round(context.Background()); err == nil || !w.tokens[acc].expires.After(until) || w.tokens[acc].revoked {
		t.Errorf("a round with Docker down: %v, renewed %v, revoked %v", err, w.tokens[acc].expires.After(until), w.tokens[acc].revoked)
	}
}

// Item 4: KV v2 rotation takes a version's time on the leader's clock
// (which stamps the tasks), not Vault's created_time alone.
func TestRotationComparesOnTheLeadersClock(t *testing.T) {
	t.Run("Vault ahead: the new tasks are not rolled again", func(t *testing.T) {
		w, _ := scripted(t)
		p := w.lead(0)
		task, _ := w.serve(t, "s2")
		task.state = swarmtypes.TaskStateRunning
		w.now = w.now.Add(time.Minute)
		w.kv = provider.Version{Number: 2, Created: w.now.Add(10 * time.Minute)} // Vault's clock 10m ahead
		if err := p.rot.Round(context.Background()); err != nil || w.forced != 1 {
			t.Fatalf("round 1: %v, %d forced", err, w.forced)
		}
		w.runAll()
		w.now = w.now.Add(time.Minute)
		if err := p.rot.Round(context.Background()); err != nil || w.forced != 1 {
			t.Fatalf("the rolled tasks, newer than the version on the leader's clock, were rolled again: %v, %d forced", err, w.forced)
		}
	})
	t.Run("Vault behind: a version written after the tasks is rolled", func(t *testing.T) {
		w, _ := scripted(t)
		p := w.lead(0)
		w.kv = provider.Version{Number: 1, Created: w.now.Add(-time.Hour)}
		task, _ := w.serve(t, "s2") // holds version 1
		task.state = swarmtypes.TaskStateRunning
		w.now = w.now.Add(time.Minute)
		if err := p.rot.Round(context.Background()); err != nil || w.forced != 0 {
			t.Fatalf("round 1: %v, %d forced", err, w.forced)
		}
		w.now = w.now.Add(time.Minute)
		// Written now, stamped by a Vault clock 10m behind: before the task.
		w.kv = provider.Version{Number: 2, Created: w.now.Add(-10 * time.Minute)}
		if err := p.rot.Round(context.Background()); err != nil || w.forced != 1 {
			t.Fatalf("a new version stamped before the task by a Vault clock behind: %v, %d forced, want 1", err, w.forced)
		}
	})
}

// runAll runs every pending event, and those they add.
func (w *world) runAll() {
	for len(w.pending) > 0 {
		w.run(0)
	}
}

// hangingTasks is an engine that hangs until the caller gives up.
type hangingTasks struct{}

func (hangingTasks) Task(ctx context.Context, _ string) (swarm.TaskState, bool, error) {
	<-ctx.Done()
	return swarm.TaskState{}, false, ctx.Err()
}

func (hangingTasks) NodeTasks(ctx context.Context, _, _ string) (map[string]swarm.TaskState, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Item 5: an engine that hangs rather than refuses takes a third of the
// request's time, not all of it: the request still has the time to be
// served (as a first fetch).
func TestAdmitLeavesTheRequestTimeWhenDockerHangs(t *testing.T) {
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	tr := NewTracker(hangingTasks{}, nil, log)
	// A request that names its service and node (a view of their tasks),
	// and one that does not (the task itself).
	for _, req := range []provider.Request{
		{Request: secrets.Request{TaskID: "t", SecretName: "s", ServiceID: "svc"}, NodeID: "node"},
		{Request: secrets.Request{TaskID: "t", SecretName: "s"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		if err := tr.Admit(ctx, req, false); err != nil {
			t.Fatal(err)
		}
		deadline, _ := ctx.Deadline()
		if ctx.Err() != nil || time.Until(deadline) < 300*time.Millisecond {
			t.Errorf("Admit with a hanging engine left %v of the request's 600ms", time.Until(deadline).Round(time.Millisecond))
		}
	}
}

// failingCheck is a STATE_PATH whose Check says what the token lacks.
type failingCheck struct {
	worldStore
	checks atomic.Int32
}

func (f *failingCheck) Check(context.Context) error {
	f.checks.Add(1)
	return errors.New("STATE_PATH=secret/state: the plugin's token lacks list on secret/metadata/state/*")
}

// Item 7: a failing STATE_PATH check is one line, however often it is
// asked, and rounds renew meanwhile.
func TestAFailingStoreCheckIsOneLineAndRenewalsGoOn(t *testing.T) {
	w, logs := scripted(t)
	p := w.lead(0)
	store := &failingCheck{worldStore: worldStore{w}}
	p.tracker.store = store
	p.loop.Interval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.loop.CheckStore(ctx) }()
	for store.checks.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if n := strings.Count(logs.String(), "lacks list on"); n != 1 {
		t.Errorf("%d log lines for %d failed checks, want 1:\n%s", n, store.checks.Load(), logs)
	}
	task, acc := w.serve(t, "s1")
	task.state = swarmtypes.TaskStateRunning
	until := w.tokens[acc].expires
	w.now = w.now.Add(11 * w.interval)
	if err := p.loop.Round(context.Background()); err != nil || !w.tokens[acc].expires.After(until) {
		t.Errorf("a round with STATE_PATH's check failing: %v, renewed %v", err, w.tokens[acc].expires.After(until))
	}
}

// blockingTerm returns a while after its term ends.
type blockingTerm struct{ returned atomic.Bool }

func (b *blockingTerm) Run(ctx context.Context) {
	<-ctx.Done()
	time.Sleep(50 * time.Millisecond)
	b.returned.Store(true)
}

type leading bool

func (l leading) IsLeader(context.Context) (bool, error) { return bool(l), nil }

// Item 7: the watcher returns only once its terms have: main revokes the
// plugin's token after it, so nothing of a term may still use it.
func TestTheWatcherWaitsForItsTerms(t *testing.T) {
	log := logrus.New()
	log.SetOutput(&bytes.Buffer{})
	term := &blockingTerm{}
	w := NewWatcher(leading(true), log, term)
	var ended atomic.Bool
	w.Ended = func() { ended.Store(true) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	if !term.returned.Load() || !ended.Load() {
		t.Errorf("Run returned before its term (returned %v, ended %v)", term.returned.Load(), ended.Load())
	}
}

// Item 11: a record whose accessor's token belongs to another task (a
// forged or stale entry) is neither renewed nor revoked, is reported once,
// and is not read again at every round.
func TestARecordOfAnotherTasksTokenIsLeftAlone(t *testing.T) {
	w, logs := scripted(t)
	p := w.lead(0)
	victim, acc := w.serve(t, "s1")
	victim.state = swarmtypes.TaskStateRunning
	w.records["t9999.db"] = Record{TaskID: "t9999", Secret: "db", ServiceID: "s1", ServiceName: "s1",
		Credentials: provider.Credentials{Accessor: acc, TokenTTL: time.Minute}, Issued: w.now}
	p.tracker.Forget() // as a new leader: everything is read from STATE_PATH
	for range 3 {
		if err := p.loop.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if w.tokens[acc].revoked {
		t.Fatal("a forged record made the plugin revoke a running task's token")
	}
	if n := strings.Count(logs.String(), "names a token that is not this task's"); n != 1 {
		t.Errorf("%d warnings for the forged record, want 1:\n%s", n, logs)
	}
	if _, ok := w.records["t9999.db"]; !ok {
		t.Error("the forged record was deleted: it is the operator's to look at")
	}
}

// Two managers serve one task as leadership moves: the second record is
// refused (check-and-set), and the request that made it revokes what it
// minted. One whose write failed and that finds the other's record when
// written again is held in memory beside it: both are revoked at the end.
func TestOneRecordPerTaskAndSecret(t *testing.T) {
	w, _ := scripted(t)
	a := w.lead(0)
	b := w.procs[1]
	req := provider.Request{Request: secrets.Request{TaskID: "t0100", SecretName: "db", ServiceID: "s1", ServiceName: "s1"}}
	w.tasks["t0100"] = &wtask{id: "t0100", service: "s1", state: swarmtypes.TaskStateRunning, desired: swarmtypes.TaskStateRunning, created: w.now}
	for _, acc := range []string{"acc-a", "acc-b", "acc-c"} {
		w.tokens[acc] = &wtoken{task: "t0100", expires: w.now.Add(time.Hour), max: w.now.Add(time.Hour)}
		w.unsettled = append(w.unsettled, acc)
	}
	if err := a.tracker.Issued(context.Background(), req, provider.Credentials{Accessor: "acc-a", TokenTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := b.tracker.Issued(context.Background(), req, provider.Credentials{Accessor: "acc-b", TokenTTL: time.Hour}); !errors.Is(err, provider.ErrRefetch) {
		t.Errorf("a second record of one task and secret: %v, want a refusal", err)
	}
	if _, ok := b.tracker.byKey[key("t0100", "db")]; ok {
		t.Error("the refused credential is held")
	}
	// A third, on B, whose write fails: held, written again at B's round.
	delete(w.records, "t0100.db")
	w.vaultDown = w.now.Add(time.Second)
	if err := b.tracker.Issued(context.Background(), req, provider.Credentials{Accessor: "acc-c", TokenTTL: time.Hour}); err == nil || errors.Is(err, provider.ErrRefetch) {
		t.Fatalf("Issued with Vault down: %v", err)
	}
	w.records["t0100.db"] = Record{TaskID: "t0100", Secret: "db", ServiceID: "s1", ServiceName: "s1",
		Credentials: provider.Credentials{Accessor: "acc-a", TokenTTL: time.Hour}, Issued: w.now}
	w.now = w.now.Add(2 * time.Second)
	w.lead(1)
	if err := b.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.tracker.Len() != 2 {
		t.Fatalf("B holds %d credentials of t0100, want both", b.tracker.Len())
	}
	w.tasks["t0100"].state = swarmtypes.TaskStateComplete
	if err := b.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !w.tokens["acc-a"].revoked || !w.tokens["acc-c"].revoked || b.tracker.Len() != 0 {
		t.Errorf("after the task ended: acc-a revoked %v, acc-c revoked %v, %d held", w.tokens["acc-a"].revoked, w.tokens["acc-c"].revoked, b.tracker.Len())
	}
}

// A token found gone at revocation may have been revoked by another
// manager, which deleted its record; a record written there since is
// another credential's, and stays.
func TestAGoneTokenDeletesOnlyItsOwnRecord(t *testing.T) {
	w, _ := scripted(t)
	p := w.lead(0)
	task, acc := w.serve(t, "s1")
	w.tokens[acc].revoked = true // by another manager, which deleted the record
	w.tokens["acc-new"] = &wtoken{task: task.id, expires: w.now.Add(time.Hour), max: w.now.Add(time.Hour), recorded: true}
	w.records[key(task.id, "db")] = Record{TaskID: task.id, Secret: "db", ServiceID: "s1", ServiceName: "s1",
		Credentials: provider.Credentials{Accessor: "acc-new", TokenTTL: time.Hour}, Issued: w.now}
	task.state = swarmtypes.TaskStateComplete
	if err := p.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, ok := w.records[key(task.id, "db")]; !ok || r.Accessor != "acc-new" {
		t.Fatalf("the other credential's record: %+v %v", r, ok)
	}
	if err := p.loop.Round(context.Background()); err != nil || !w.tokens["acc-new"].revoked {
		t.Errorf("the other credential of the ended task: %v, revoked %v", err, w.tokens["acc-new"].revoked)
	}
}

// A plugin upgraded without the lookup-accessor grant: the records another
// manager wrote are renewed (what the old plugin did) but never revoked,
// since it cannot tell whose tokens they are, and the round says what to
// grant.
func TestWithoutTheLookupGrantRecordsAreRenewedNotRevoked(t *testing.T) {
	w, _ := scripted(t)
	w.leader = 1
	running, runAcc := w.serve(t, "s1")
	ended, endAcc := w.serve(t, "s1")
	running.state, ended.state = swarmtypes.TaskStateRunning, swarmtypes.TaskStateComplete
	p := w.lead(0)
	w.lookupDenied = true
	until := w.tokens[runAcc].expires
	w.now = w.now.Add(time.Minute)
	err := p.loop.Round(context.Background())
	if err == nil || !strings.Contains(err.Error(), "grant its policy update on auth/token/lookup-accessor") {
		t.Errorf("round: %v", err)
	}
	if !w.tokens[runAcc].expires.After(until) || w.tokens[endAcc].revoked {
		t.Errorf("renewed %v, the ended task's revoked %v", w.tokens[runAcc].expires.After(until), w.tokens[endAcc].revoked)
	}
	w.lookupDenied = false
	if err := p.loop.Round(context.Background()); err != nil || !w.tokens[endAcc].revoked {
		t.Errorf("with the grant: %v, revoked %v", err, w.tokens[endAcc].revoked)
	}
}

// A credential whose record could not be written is this manager's alone:
// it stays held when a term ends, and is written at the next.
func TestAnUnwrittenRecordOutlivesTheTerm(t *testing.T) {
	w, _ := scripted(t)
	p := w.lead(0)
	w.vaultDown = w.now.Add(time.Second)
	task, acc := w.serve(t, "s1")
	task.state = swarmtypes.TaskStateRunning
	if w.tokens[acc].recorded {
		t.Fatal("recorded with Vault down")
	}
	w.now = w.now.Add(2 * time.Second)
	w.lead(1)
	if p.inTerm || p.tracker.Len() != 1 {
		t.Fatalf("after the term: in term %v, %d held", p.inTerm, p.tracker.Len())
	}
	w.lead(0)
	if err := p.loop.Round(context.Background()); err != nil || !w.tokens[acc].recorded {
		t.Errorf("at the next term's round: %v, recorded %v", err, w.tokens[acc].recorded)
	}
}

// hangingVault answers no call: each runs out of its deadline.
type hangingVault struct{ calls atomic.Int32 }

func (h *hangingVault) wait(ctx context.Context) error {
	h.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}
func (h *hangingVault) RenewToken(ctx context.Context, _ string, _ time.Duration) (time.Duration, error) {
	return 0, h.wait(ctx)
}
func (h *hangingVault) RenewLease(ctx context.Context, _ string, _ time.Duration) (time.Duration, error) {
	return 0, h.wait(ctx)
}
func (h *hangingVault) RevokeToken(ctx context.Context, _ string) error { return h.wait(ctx) }
func (h *hangingVault) LookupToken(ctx context.Context, _ string) (TokenInfo, error) {
	return TokenInfo{}, h.wait(ctx)
}

// A Vault that hangs rather than refuses: the round stops after as many
// timeouts in a row as it makes calls at once, instead of waiting out
// every record.
func TestARoundStopsWhenVaultHangs(t *testing.T) {
	w, _ := scripted(t)
	p := w.lead(0)
	for range 40 {
		task, _ := w.serve(t, "s1")
		task.state = swarmtypes.TaskStateComplete
	}
	v := &hangingVault{}
	p.loop.vault, p.loop.Timeout, p.loop.Workers = v, 5*time.Millisecond, 2
	err := p.loop.Round(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Vault did not answer 2 calls in a row within VAULT_CLIENT_TIMEOUT, so the round stopped") {
		t.Errorf("round: %v", err)
	}
	if n := v.calls.Load(); n > 4 {
		t.Errorf("%d calls to a Vault that hangs, want at most 4 (2 at once, stopping after 2 timeouts)", n)
	}
}

// A Vault that answers it serves no one (a seal), or no call of a kind (a
// rate limit quota), would refuse every credential's call: the round makes
// no more such calls after the first answer, says so with the remedy, and
// makes no more calls than it runs at once, through the real client and
// its errors, so a quota is not met with a storm of one call per
// credential.
func TestARoundStopsWhenVaultServesNoOne(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   string
	}{
		{http.StatusTooManyRequests, `{"errors":["request path \"auth/token/revoke-accessor\": rate limit quota exceeded"]}`,
			"Vault's rate limit quota refused the call (HTTP 429: request path \"auth/token/revoke-accessor\": rate limit quota exceeded), so this round made no more token revocations ("},
		{http.StatusServiceUnavailable, `{"errors":["Vault is sealed"]}`, "Vault is sealed, so the round stopped after "},
	} {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(c.status)
				io.WriteString(w, c.body)
			}))
			defer srv.Close()
			client := vaultAt(t, srv.URL)

			w, _ := scripted(t)
			p := w.lead(0)
			for range 40 {
				task, _ := w.serve(t, "s1")
				task.state = swarmtypes.TaskStateComplete
			}
			p.loop.vault, p.loop.Workers = NewVaultCredentials(client), 2
			err := p.loop.Round(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "the next round") && !strings.Contains(err.Error(), "of the 40 task credentials due, and the next one tries again: ") {
				t.Errorf("round: %v", err)
			}
			if n := calls.Load(); n > 2 {
				t.Errorf("%d calls to a Vault that serves no one, want at most 2 (the calls made at once)", n)
			}
			if p.tracker.Len() != 40 {
				t.Errorf("%d credentials still held, want 40: none was revoked", p.tracker.Len())
			}
		})
	}
}

// forcerFunc is a Forcer.
type forcerFunc func(ctx context.Context, serviceID string) error

func (f forcerFunc) ForceUpdate(ctx context.Context, serviceID string) error {
	return f(ctx, serviceID)
}

// A certificate has no lease to renew: once ROTATE_AT of its lifetime has
// passed, the leader rolls its vault.rotate service, once, and warns once,
// naming the service, for one without vault.rotate.
func TestACertificateRollsItsServiceBeforeItExpires(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	var forced []string
	loop := NewLoop(NewTracker(nil, nil, log), nil, nil, NewRollouts(forcerFunc(func(_ context.Context, id string) error {
		forced = append(forced, id)
		return nil
	}), log), log)
	loop.now = func() time.Time { return now }
	issued := now.Add(-11 * time.Minute)
	cert := func(task, service string, rotate bool) *tracked {
		return &tracked{verified: true, tokenUntil: now.Add(time.Hour), Record: Record{TaskID: task, Secret: "tls_cert", ServiceID: "id-" + service, ServiceName: service, Issued: issued,
			Credentials: provider.Credentials{Accessor: "acc-" + task, TokenTTL: time.Hour, Expires: issued.Add(15 * time.Minute), Rotate: rotate}}}
	}
	all := []*tracked{cert("t1", "web", true), cert("t2", "web", true), cert("t3", "plain", false)}
	running := map[string]swarm.TaskState{}
	for _, h := range all {
		running[h.TaskID] = swarm.TaskState{State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateRunning}
	}
	loop.RotateAt = 0.75 // not yet: 11 of 15 minutes
	loop.rollEnding(context.Background(), all, running)
	if len(forced) != 0 || strings.Contains(logs.String(), "expires") {
		t.Fatalf("before ROTATE_AT: forced %v, log:\n%s", forced, logs.String())
	}
	loop.RotateAt = DefaultRotateAt
	for range 2 {
		loop.rollEnding(context.Background(), all, running)
	}
	if len(forced) != 1 || forced[0] != "id-web" {
		t.Errorf("forced %v, want service web once", forced)
	}
	if n := strings.Count(logs.String(), "the task's certificate expires at 2026-12-01T12:04:00Z and cannot be renewed: docker service update --force plain"); n != 1 {
		t.Errorf("%d warnings for service plain, want 1:\n%s", n, logs.String())
	}
}

// Vault answers a lease renewal with HTTP 400 both when the lease is over
// and when the backend behind it fails for now: a database that is down
// gives "failed to renew entry: … connection refused" (measured against
// Vault 1.21 with PostgreSQL halted). Only the first ends the renewals; the
// second is an error the next round tries again. (It ended them, and a
// running task's database user expired.)
func TestALeaseIsOverOnlyWhenVaultSaysSo(t *testing.T) {
	for _, c := range []struct {
		body string
		over bool
	}{
		{`{"errors":["failed to renew entry: resp: (*logical.Response)(nil) err: 1 error occurred:\n\t* failed to connect to ` +
			"`host=127.0.0.1 user=postgres database=postgres`" + `: dial error (dial tcp 127.0.0.1:5433: connect: connection refused)\n\n"]}`, false},
		{`{"errors":["lease not found"]}`, true},
		{`{"errors":["lease is not renewable"]}`, true},
		{`{"errors":["lease expired"]}`, true},
		{`{"errors":["invalid lease"]}`, true},
		{`{"errors":["something else Vault may say"]}`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, c.body)
		}))
		_, err := NewVaultCredentials(vaultAt(t, srv.URL)).RenewLease(context.Background(), "db/creds/app/x", time.Minute)
		srv.Close()
		if err == nil {
			t.Fatalf("%s: no error", c.body)
		}
		if over := errors.Is(err, ErrLeaseNotRenewable); over != c.over {
			t.Errorf("%s: taken for the lease's end: %v, want %v (%v)", c.body, over, c.over, err)
		}
	}
}

// A rate limit quota may cover one path: one on lease renewals stops the
// round's lease renewals, not its token renewals, or the quota would let
// the tokens of every task whose lease comes first in the round expire.
func TestAQuotaOnLeaseRenewalsLeavesTokenRenewalsAlone(t *testing.T) {
	var tokens, leases atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/auth/token/renew-accessor":
			tokens.Add(1)
			io.WriteString(w, `{"auth":{"lease_duration":3600,"renewable":true}}`)
		case "/v1/sys/leases/renew":
			leases.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"errors":["request path \"sys/leases/renew\": rate limit quota exceeded"]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	client := vaultAt(t, srv.URL)
	log := logrus.New()
	log.SetOutput(io.Discard)
	loop := NewLoop(NewTracker(nil, nil, log), nil, NewVaultCredentials(client), nil, log)
	loop.Workers = 2
	now := time.Now()
	var all []*tracked
	running := map[string]swarm.TaskState{}
	for i := range 20 {
		id := fmt.Sprintf("t%02d", i)
		all = append(all, &tracked{verified: true, tokenUntil: now.Add(time.Second), leaseUntil: now.Add(time.Second),
			Record: Record{TaskID: id, Secret: "db", ServiceName: "app", Credentials: provider.Credentials{Accessor: "acc-" + id,
				TokenTTL: time.Hour, LeaseID: "db/creds/app/" + id, LeaseTTL: time.Hour, LeaseRenewable: true}}})
		running[id] = swarm.TaskState{State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateRunning}
	}
	_, err := loop.reconcile(context.Background(), all, running)
	if err == nil || !strings.Contains(err.Error(), "so this round made no more lease renewals (") {
		t.Errorf("round: %v", err)
	}
	if n := tokens.Load(); n != 20 {
		t.Errorf("%d of the 20 tokens renewed", n)
	}
	if n := leases.Load(); n > 2 {
		t.Errorf("%d lease renewals into the quota, want at most 2 (the calls made at once)", n)
	}
	for _, h := range all {
		if !h.tokenUntil.After(now.Add(time.Minute)) {
			t.Fatalf("task %s: its token was not renewed", h.TaskID)
		}
	}
}

// A lease whose renewals keep failing for a reason Vault does not say is
// its end (its role deleted, or the database down for good) rolls its
// vault.rotate service once a quarter of its TTL is left, and not before:
// a backend back in time is renewed first.
func TestALeaseThatKeepsFailingRollsItsServiceInTime(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	log := logrus.New()
	log.SetOutput(io.Discard)
	var forced []string
	loop := NewLoop(NewTracker(nil, nil, log), nil, nil, NewRollouts(forcerFunc(func(_ context.Context, id string) error {
		forced = append(forced, id)
		return nil
	}), log), log)
	loop.now = func() time.Time { return now }
	h := &tracked{verified: true, leaseFailing: true, tokenUntil: now.Add(time.Hour), leaseUntil: now.Add(20 * time.Second),
		Record: Record{TaskID: "t1", Secret: "db", ServiceID: "id-app", ServiceName: "app", Issued: now.Add(-time.Minute),
			Credentials: provider.Credentials{Accessor: "acc-t1", TokenTTL: time.Hour, LeaseID: "db/creds/app/x", LeaseTTL: time.Minute, LeaseRenewable: true, Rotate: true}}}
	running := map[string]swarm.TaskState{"t1": {State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateRunning}}
	loop.rollEnding(context.Background(), []*tracked{h}, running)
	if len(forced) != 0 {
		t.Fatalf("rolled with 20 s of a 1 min lease left: %v", forced)
	}
	h.leaseUntil = now.Add(15 * time.Second)
	loop.rollEnding(context.Background(), []*tracked{h}, running)
	if len(forced) != 1 || forced[0] != "id-app" {
		t.Errorf("with a quarter of the lease left, forced %v, want service app once", forced)
	}
}

// vaultAt is a Vault client of the plugin's for a fake Vault at addr, as
// the plugin makes it: no retries.
func vaultAt(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = addr, 0
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("plugin-token")
	return client
}

// countingStore counts the record reads, and the most made at once.
type countingStore struct {
	worldStore
	gets, inFlight, most atomic.Int32
	// hold keeps each read under way a moment, so that reads made at
	// once overlap.
	hold time.Duration
}

func (c *countingStore) Get(ctx context.Context, taskID, secret string) (Record, bool, error) {
	c.gets.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	time.Sleep(c.hold)
	return c.worldStore.Get(ctx, taskID, secret)
}

// Issue 23: a new leader reads each record once and asks Vault only of the
// credentials that are due, whose tasks ended, or whose record an older
// plugin wrote without their ends (which it then writes with them); it
// renews them when their records say, and writes the new ends back.
func TestANewLeaderReadsEachRecordOnceAndAsksVaultOnlyOfWhatIsDue(t *testing.T) {
	w, _ := scripted(t)
	a := w.lead(0)
	ctx := context.Background()
	var running []*wtask
	for range 4 {
		task, _ := w.serve(t, "s1")
		running = append(running, task)
	}
	// Past half their 2-minute TTL, A renews them and writes their ends.
	w.now = w.now.Add(70 * time.Second)
	for _, task := range running {
		task.state = swarmtypes.TaskStateRunning
	}
	if err := a.loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, task := range running {
		if got, want := w.records[key(task.id, "db")].TokenUntil, w.tokens[accessorOf(w, task.id)].expires; !got.Equal(want) {
			t.Fatalf("task %s's record says its token ends at %s, Vault at %s", task.id, got, want)
		}
	}
	// Two more, one of whose records an older plugin wrote (no ends), and
	// one that ends.
	old, _ := w.serve(t, "s1")
	r := w.records[key(old.id, "db")]
	r.TokenUntil = time.Time{}
	w.records[r.Key()] = r
	ended, endedAcc := w.serve(t, "s1")
	old.state, ended.state = swarmtypes.TaskStateRunning, swarmtypes.TaskStateComplete
	running = append(running, old)

	w.now = w.now.Add(10 * time.Second)
	b := w.lead(1)
	store := &countingStore{worldStore: worldStore{w}}
	b.tracker.store = store
	if err := b.loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if n := store.gets.Load(); n != 6 {
		t.Errorf("the new leader read records %d times for 6 records", n)
	}
	if w.lookups != 2 {
		t.Errorf("the new leader looked up %d tokens; want 2 (the ended task's, and the record without ends)", w.lookups)
	}
	if !w.tokens[endedAcc].revoked {
		t.Error("the ended task's credential is not revoked")
	}
	if got := w.records[key(old.id, "db")].TokenUntil; !got.Equal(w.tokens[accessorOf(w, old.id)].expires) {
		t.Errorf("the record without ends was not written with them: token_until %s", got)
	}

	// When the records say they are due, the new leader renews them, and
	// writes their new ends.
	w.now = w.now.Add(50 * time.Second)
	if err := b.loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, task := range running {
		tok := w.tokens[accessorOf(w, task.id)]
		if left := tok.expires.Sub(w.now); left < time.Minute {
			t.Errorf("task %s's token has %s left after the round its record said it was due", task.id, left)
		}
		if got := w.records[key(task.id, "db")].TokenUntil; !got.Equal(tok.expires) {
			t.Errorf("task %s's record says %s, Vault %s", task.id, got, tok.expires)
		}
	}
	if n := store.gets.Load(); n != 6 {
		t.Errorf("records read %d times in all for 6 records", n)
	}
	w.checkExpiry()
}

// Issue 23: a new leader's load reads records in parallel, never more at
// once than LIFECYCLE_CONCURRENCY (Workers).
func TestLoadReadsRecordsAtOnceWithinTheConcurrencySetting(t *testing.T) {
	w, _ := scripted(t)
	w.lead(0)
	for range 40 {
		w.serve(t, "s1")
	}
	b := w.lead(1)
	store := &countingStore{worldStore: worldStore{w}, hold: 2 * time.Millisecond}
	b.tracker.store = store
	loaded, _, err := b.tracker.load(context.Background(), direct, 4)
	if err != nil || loaded != 40 {
		t.Fatalf("loaded %d records: %v", loaded, err)
	}
	if most := store.most.Load(); most < 2 || most > 4 {
		t.Errorf("%d record reads at once; want 2 to 4 (LIFECYCLE_CONCURRENCY=4)", most)
	}
	// Taken in in the list's order, whatever order the reads ended in.
	held := b.tracker.snapshot(b.tracker.mark())
	if !slices.IsSortedFunc(held, func(x, y *tracked) int { return strings.Compare(x.Key(), y.Key()) }) {
		t.Error("records are not held in the list's order")
	}
}

// From a review of issue 23's change: credentials whose token Vault no
// longer has lose their record, and the rewrite that follows a renewal
// does not write it back (here the record's ends had moved since its last
// write, as after a failed rewrite).
func TestARecordWhoseTokenIsGoneIsNotWrittenBack(t *testing.T) {
	w, _ := scripted(t)
	a := w.lead(0)
	task, acc := w.serve(t, "s1")
	task.state = swarmtypes.TaskStateRunning
	h := a.tracker.byKey[key(task.id, "db")]
	if h == nil || !a.tracker.written(h) {
		t.Fatalf("the served credential is not held as written: %+v", h)
	}
	h.moved = true
	w.tokens[acc].revoked = true // outside swarmvault
	w.now = w.now.Add(70 * time.Second)
	if err := a.loop.Round(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, ok := w.records[key(task.id, "db")]; ok {
		t.Errorf("the record of a token Vault no longer has is there: %+v", r)
	}
	if _, ok := a.tracker.byKey[key(task.id, "db")]; ok {
		t.Error("the credential is still held")
	}
}

// blockingStore holds each Put until released.
type blockingStore struct {
	worldStore
	release chan struct{}
	put     error
}

func (b *blockingStore) Put(ctx context.Context, r Record) error {
	<-b.release
	if b.put != nil {
		return b.put
	}
	return b.worldStore.Put(ctx, r)
}

// From the same review: a credential may be written again (after a
// renewal) only once its record's first write is done, and never once the
// request that issued it was refused (another manager's record is there).
func TestACredentialIsWrittenAgainOnlyOnceItsRecordIs(t *testing.T) {
	w, _ := scripted(t)
	a := w.lead(0)
	for _, put := range []error{nil, ErrRecorded} {
		store := &blockingStore{worldStore: worldStore{w}, release: make(chan struct{}), put: put}
		a.tracker.store = store
		task := fmt.Sprintf("t9%03d", len(w.records))
		req := provider.Request{Request: secrets.Request{TaskID: task, SecretName: "db", ServiceID: "s1", ServiceName: "s1"}}
		w.tokens["acc-"+task] = &wtoken{task: task, expires: w.now.Add(time.Minute), max: w.now.Add(time.Hour)}
		done := make(chan error, 1)
		go func() {
			done <- a.tracker.Issued(context.Background(), req, provider.Credentials{Accessor: "acc-" + task, TokenTTL: time.Minute})
		}()
		var h *tracked
		for deadline := time.Now().Add(5 * time.Second); h == nil; time.Sleep(time.Millisecond) {
			a.tracker.mu.Lock()
			h = a.tracker.byKey[key(task, "db")]
			a.tracker.mu.Unlock()
			if time.Now().After(deadline) {
				t.Fatal("Issued holds nothing")
			}
		}
		if a.tracker.written(h) {
			t.Errorf("put %v: written while its first write is under way", put)
		}
		close(store.release)
		err := <-done
		if got, want := a.tracker.written(h), put == nil; got != want || (put == nil) != (err == nil) {
			t.Errorf("put %v: Issued %v, then written %v; want %v", put, err, got, want)
		}
	}
}
