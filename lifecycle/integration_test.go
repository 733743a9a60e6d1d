//go:build integration

// Integration tests against a real Vault (make test-integration starts the
// dev server): VAULT_ADDR, and a root token in VAULT_TOKEN_FILE. The Docker
// side is a fake; the e2e tests run the real one.

package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
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

func rootClient(t testing.TB) *api.Client {
	t.Helper()
	if os.Getenv("VAULT_ADDR") == "" || os.Getenv("VAULT_TOKEN_FILE") == "" {
		t.Fatal("VAULT_ADDR and VAULT_TOKEN_FILE are not set: run make test-integration, which starts the dev Vault")
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(os.Getenv("VAULT_TOKEN_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(strings.TrimSpace(string(b)))
	return client
}

// pluginPolicy is the README's policy for the lifecycle, for STATE_PATH
// mount/state on a KV v2 mount (kv1: a KV v1 one).
func pluginPolicy(mount string, kv1 bool) string {
	state := fmt.Sprintf("path \"%s/data/state/*\" { capabilities = [\"create\", \"update\", \"read\"] }\npath \"%s/metadata/state/*\" { capabilities = [\"list\", \"delete\"] }\n", mount, mount)
	if kv1 {
		state = fmt.Sprintf("path \"%s/state/*\" { capabilities = [\"create\", \"update\", \"read\", \"list\", \"delete\"] }\n", mount)
	}
	return state + `path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
`
}

// bed is a state mount and a plugin token with the README's policy.
type bed struct {
	root, plugin *api.Client
	mount        string
}

func newBed(t testing.TB, kv1 bool, policy func(mount string) string) *bed {
	t.Helper()
	root := rootClient(t)
	ctx := context.Background()
	version := "2"
	if kv1 {
		version = "1"
	}
	b := &bed{root: root, mount: fmt.Sprintf("lc-%s-%x", version, time.Now().UnixNano())}
	if err := root.Sys().MountWithContext(ctx, b.mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Sys().Unmount(b.mount) })
	if policy == nil {
		policy = func(m string) string { return pluginPolicy(m, kv1) }
	}
	if err := root.Sys().PutPolicy(b.mount, policy(b.mount)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Sys().DeletePolicy(b.mount) })
	s, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{b.mount}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Auth().Token().RevokeOrphan(s.Auth.ClientToken) })
	if b.plugin, err = root.Clone(); err != nil {
		t.Fatal(err)
	}
	b.plugin.SetToken(s.Auth.ClientToken)
	return b
}

// taskToken mints an orphan task token for taskID as the provider does.
func (b *bed) taskToken(t testing.TB, taskID, ttl string) *api.SecretAuth {
	t.Helper()
	s, err := b.root.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: ttl, ExplicitMaxTTL: "1h",
		Metadata: map[string]string{"task_id": taskID}})
	if err != nil {
		t.Fatal(err)
	}
	return s.Auth
}

// ttl is the remaining TTL of the token behind accessor; gone when Vault
// no longer has it.
func (b *bed) ttl(t *testing.T, accessor string) (ttl time.Duration, gone bool) {
	t.Helper()
	s, err := b.root.Auth().Token().LookupAccessor(accessor)
	if err != nil {
		return 0, true
	}
	n, _ := s.Data["ttl"].(interface{ Int64() (int64, error) }).Int64()
	return time.Duration(n) * time.Second, false
}

// countingTransport counts the HTTP requests a client makes to Vault.
type countingTransport struct {
	next  http.RoundTripper
	calls atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	return c.next.RoundTrip(r)
}

// counted returns a client with the plugin's token that counts its Vault
// calls.
func (b *bed) counted(t testing.TB) (*api.Client, *countingTransport) {
	t.Helper()
	cfg := api.DefaultConfig()
	ct := &countingTransport{next: cfg.HttpClient.Transport}
	cfg.HttpClient.Transport = ct
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(b.plugin.Token())
	return c, ct
}

func TestStoreRoundTrip(t *testing.T) {
	for _, kv1 := range []bool{false, true} {
		t.Run(fmt.Sprintf("kv1=%v", kv1), func(t *testing.T) {
			b := newBed(t, kv1, nil)
			ctx := context.Background()
			s := NewStore(b.plugin, b.mount+"/state/")
			if err := s.Check(ctx); err != nil {
				t.Fatalf("Check with the README's policy: %v", err)
			}
			r := Record{TaskID: "x5ydrx0wmrgk3rj1p8e2d0zfo", Secret: "stack_db.pw", ServiceID: "svc1", ServiceName: "stack_app",
				Credentials: provider.Credentials{Accessor: "acc1", TokenTTL: time.Hour, LeaseID: "database/creds/app/abc", LeaseTTL: 30 * time.Second, LeaseRenewable: true},
				Issued:      time.Now().Truncate(time.Second)}
			if err := s.Put(ctx, r); err != nil {
				t.Fatal(err)
			}
			// The same record again (an answer lost, written again): fine.
			// Another credential's record of the same task and secret:
			// refused on KV v2 (check-and-set), the last write on KV v1.
			if err := s.Put(ctx, r); err != nil {
				t.Errorf("the same record written again: %v", err)
			}
			other := r
			other.Accessor = "acc2"
			if err := s.Put(ctx, other); kv1 && err != nil || !kv1 && !errors.Is(err, ErrRecorded) {
				t.Errorf("a second credential's record of one task and secret: %v", err)
			}
			if kv1 {
				s.Put(ctx, r) // as it was
			}
			got, found, err := s.Get(ctx, r.TaskID, r.Secret)
			if err != nil || !found {
				t.Fatalf("Get: %v %v", found, err)
			}
			if !got.Issued.Equal(r.Issued) {
				t.Errorf("issued %v, want %v", got.Issued, r.Issued)
			}
			got.Issued = r.Issued
			if got != r {
				t.Errorf("Get gives %+v\nwant %+v", got, r)
			}
			// After a renewal the record is written again with its ends.
			renewed := r
			renewed.TokenUntil = time.Now().Add(time.Hour).Truncate(time.Second).UTC()
			if err := s.Update(ctx, renewed); err != nil {
				t.Fatal(err)
			}
			if got, _, err := s.Get(ctx, r.TaskID, r.Secret); err != nil || !got.TokenUntil.Equal(renewed.TokenUntil) || got.Accessor != r.Accessor {
				t.Errorf("after Update: %+v, %v", got, err)
			}
			// An entry someone else wrote there is reported, not taken.
			if kv1 {
				b.root.KVv1(b.mount).Put(ctx, "state/other", map[string]any{"a": "b"})
			} else {
				b.root.KVv2(b.mount).Put(ctx, "state/other", map[string]any{"a": "b"})
			}
			all, bad, err := s.List(ctx)
			if err != nil || len(all) != 1 || all[0].Accessor != "acc1" || len(bad) != 1 || bad[0] != "other" {
				t.Fatalf("List: %+v bad %v err %v", all, bad, err)
			}
			if err := s.Delete(ctx, r.TaskID, r.Secret); err != nil {
				t.Fatal(err)
			}
			if _, found, err := s.Get(ctx, r.TaskID, r.Secret); found || err != nil {
				t.Fatalf("after Delete: found %v, err %v", found, err)
			}
			if all, _, _ := s.List(ctx); len(all) != 0 {
				t.Errorf("after Delete, List gives %+v", all)
			}
			if !kv1 {
				// Every version goes, not just the latest.
				if m, err := b.root.KVv2(b.mount).GetMetadata(ctx, "state/"+r.Key()); err == nil {
					t.Errorf("metadata left after Delete: %+v", m)
				}
			}
			// Deleted, the record can be written again.
			if err := s.Put(ctx, r); err != nil {
				t.Errorf("Put after Delete: %v", err)
			}
			s.Delete(ctx, r.TaskID, r.Secret)
		})
	}
}

func TestStoreCheckNamesWhatIsMissing(t *testing.T) {
	b := newBed(t, false, func(m string) string {
		return fmt.Sprintf("path \"%s/data/state/*\" { capabilities = [\"create\", \"update\", \"read\"] }\n", m)
	})
	err := NewStore(b.plugin, b.mount+"/state").Check(context.Background())
	want := fmt.Sprintf("STATE_PATH=%[1]s/state: the plugin's token lacks delete on %[1]s/metadata/state/*, list on %[1]s/metadata/state/*, update on auth/token/lookup-accessor; add them to its policy (docs/vault-setup.md lists the lifecycle's paths)", b.mount)
	if err == nil || err.Error() != want {
		t.Errorf("Check: %v\nwant %s", err, want)
	}
	err = NewStore(b.plugin, "nomount-here/state").Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "STATE_PATH=nomount-here/state") {
		t.Errorf("Check of a path on no mount: %v", err)
	}
}

// fakeSwarm is the leader's view of the swarm, set by the test.
type fakeSwarm struct {
	mu    sync.Mutex
	tasks map[string]swarm.TaskState
	err   error // the engine does not answer
	// forced: the services rolled; unsettled: those whose update has not
	// settled, by state.
	forced    []string
	unsettled map[string]swarmtypes.UpdateState
}

func (f *fakeSwarm) Tasks(context.Context, []string) (map[string]swarm.TaskState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := map[string]swarm.TaskState{}
	for k, v := range f.tasks {
		out[k] = v
	}
	return out, nil
}

func (f *fakeSwarm) NodeTasks(ctx context.Context, _, _ string) (map[string]swarm.TaskState, error) {
	return f.Tasks(ctx, nil)
}

func (f *fakeSwarm) Task(_ context.Context, id string) (swarm.TaskState, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.tasks[id]
	return st, ok, nil
}

// ForceUpdate records the services rolled; a service named in unsettled
// is refused as one whose update has not settled.
func (f *fakeSwarm) ForceUpdate(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.unsettled[id]; ok {
		return &swarm.UnsettledError{Service: swarm.Service{ID: id, Name: id, Update: st, UpdateMessage: "update paused due to failure"}}
	}
	f.forced = append(f.forced, id)
	return nil
}

func (f *fakeSwarm) set(id string, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == "" {
		delete(f.tasks, id)
		return
	}
	f.tasks[id] = swarm.TaskState{State: swarmtypes.TaskState(state)}
}

func request(task, secret string) provider.Request {
	return provider.Request{Request: secrets.Request{TaskID: task, SecretName: secret, ServiceName: "app", ServiceID: "svc1"}}
}

// A manager that starts to lead renews what the old leader issued, and
// revokes it when the task ends or is gone; a manager that does not lead
// touches nothing.
func TestLoopRenewsAndRevokesAcrossALeaderChange(t *testing.T) {
	b := newBed(t, false, nil)
	ctx := context.Background()
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)
	sw := &fakeSwarm{tasks: map[string]swarm.TaskState{}}

	// The old leader issues to three running tasks.
	old := NewTracker(sw, NewStore(b.plugin, b.mount+"/state"), log)
	tasks := []string{"aaaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaaa3"}
	accessors := map[string]string{}
	for _, id := range tasks {
		sw.set(id, "assigned")
		if err := old.Admit(ctx, request(id, "tok"), true); err != nil {
			t.Fatalf("Admit of a first fetch: %v", err)
		}
		a := b.taskToken(t, id, "20s")
		accessors[id] = a.Accessor
		if err := old.Issued(ctx, request(id, "tok"), provider.Credentials{Accessor: a.Accessor, TokenTTL: 20 * time.Second}); err != nil {
			t.Fatal(err)
		}
		sw.set(id, "running")
	}
	// A repeated fetch is refused: by the task's state, and, for a task
	// whose node never saw it, by the record.
	if err := old.Admit(ctx, request(tasks[0], "tok"), true); !errors.Is(err, provider.ErrRefetch) {
		t.Errorf("Admit of a running task: %v", err)
	}
	sw.set(tasks[0], "assigned")
	newLeader := NewTracker(sw, NewStore(b.plugin, b.mount+"/state"), log)
	if err := newLeader.Admit(ctx, request(tasks[0], "tok"), true); !errors.Is(err, provider.ErrRefetch) || !strings.Contains(err.Error(), "has not started") {
		t.Errorf("Admit of an assigned task with a record: %v", err)
	}
	if err := newLeader.Admit(ctx, request(tasks[0], "other"), true); err != nil {
		t.Errorf("Admit of another secret of that task: %v", err)
	}
	sw.set(tasks[0], "running")

	time.Sleep(3 * time.Second)
	loop := NewLoop(newLeader, sw, NewVaultCredentials(b.plugin), NewRollouts(sw, log), log)
	// 20s tokens, with about 17s left: due, with two rounds to spare.
	loop.Interval = 10 * time.Second

	// A forged record: an ended task's entry with a running task's
	// accessor. Vault's lookup names another task: left alone.
	forged := Record{TaskID: "aaaaaaaaaaaaaaaaaaaaaaaa8", Secret: "tok", ServiceID: "svc1", ServiceName: "app",
		Credentials: provider.Credentials{Accessor: accessors[tasks[1]], TokenTTL: 20 * time.Second}, Issued: time.Now()}
	if err := newLeader.store.Put(ctx, forged); err != nil {
		t.Fatal(err)
	}
	// The new leader's first round: the old leader's records are renewed,
	// once Vault says each token is its task's.
	if err := loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range tasks {
		if ttl, gone := b.ttl(t, accessors[id]); gone || ttl < 19*time.Second {
			t.Errorf("task %s: token not renewed by the new leader: ttl %v gone %v", id, ttl, gone)
		}
	}
	if !strings.Contains(logs.String(), "entry aaaaaaaaaaaaaaaaaaaaaaaa8.tok names a token that is not this task's: left alone") {
		t.Errorf("no warning for the forged record:\n%s", logs.String())
	}
	if err := newLeader.store.Delete(ctx, forged.TaskID, forged.Secret); err != nil {
		t.Fatal(err)
	}
	// With STATE_PATH read, a first fetch costs no look-up in Vault, and a
	// task that has a record is still refused.
	counting, ct := b.counted(t)
	loaded := NewTracker(sw, NewStore(counting, b.mount+"/state"), log)
	if _, _, err := loaded.load(ctx, direct, 8); err != nil {
		t.Fatal(err)
	}
	ct.calls.Store(0)
	sw.set("aaaaaaaaaaaaaaaaaaaaaaaa9", "assigned")
	if err := loaded.Admit(ctx, request("aaaaaaaaaaaaaaaaaaaaaaaa9", "tok"), true); err != nil || ct.calls.Load() != 0 {
		t.Errorf("Admit of a first fetch once STATE_PATH is loaded: %v, %d Vault calls", err, ct.calls.Load())
	}
	sw.set(tasks[0], "assigned")
	if err := newLeader.Admit(ctx, request(tasks[0], "tok"), true); !errors.Is(err, provider.ErrRefetch) {
		t.Errorf("Admit of an assigned task with a loaded record: %v", err)
	}
	sw.set(tasks[0], "running")
	// One task completes, one is gone from the swarm: both revoked at the
	// next round, and their records deleted.
	sw.set(tasks[1], "complete")
	sw.set(tasks[2], "")
	if err := loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range tasks[1:] {
		if _, gone := b.ttl(t, accessors[id]); !gone {
			t.Errorf("task %s ended: its token is still in Vault", id)
		}
	}
	if _, gone := b.ttl(t, accessors[tasks[0]]); gone {
		t.Errorf("the running task's token was revoked")
	}
	all, _, err := newLeader.store.(*Store).List(ctx)
	if err != nil || len(all) != 1 || all[0].TaskID != tasks[0] {
		t.Errorf("records left: %+v (%v), want only the running task's", all, err)
	}
	if newLeader.Len() != 1 {
		t.Errorf("held in memory: %d", newLeader.Len())
	}
	// A token revoked outside the plugin: its record goes at the next
	// renewal, with a warning.
	if err := b.root.Auth().Token().RevokeAccessor(accessors[tasks[0]]); err != nil {
		t.Fatal(err)
	}
	newLeader.byKey[key(tasks[0], "tok")].tokenUntil = time.Time{}
	if err := loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if all, _, _ := newLeader.store.(*Store).List(ctx); len(all) != 0 || newLeader.Len() != 0 {
		t.Errorf("records left after the token was revoked outside: %+v", all)
	}
	if !strings.Contains(logs.String(), "the task's token no longer exists in Vault") {
		t.Errorf("no warning for a token revoked outside the plugin:\n%s", logs.String())
	}
	if strings.Count(logs.String(), "its credentials are revoked") != 2 {
		t.Errorf("want one revocation line per ended task:\n%s", logs.String())
	}

	for _, a := range accessors {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, a) {
				t.Errorf("an accessor was logged: %s", line)
			}
		}
	}
}

// A token past its max TTL cannot be renewed further: the loop says when it
// ends, once, and stops asking.
func TestLoopReportsATokenAtItsMaxTTL(t *testing.T) {
	b := newBed(t, false, nil)
	ctx := context.Background()
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	sw := &fakeSwarm{tasks: map[string]swarm.TaskState{"bbbbbbbbbbbbbbbbbbbbbbbb1": {State: "running"}}}
	s, err := b.root.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "20s", ExplicitMaxTTL: "21s"})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(sw, NewStore(b.plugin, b.mount+"/state"), log)
	if err := tr.Issued(ctx, request("bbbbbbbbbbbbbbbbbbbbbbbb1", "tok"), provider.Credentials{Accessor: s.Auth.Accessor, TokenTTL: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // less than the TTL is left to the max
	loop := NewLoop(tr, sw, NewVaultCredentials(b.plugin), NewRollouts(sw, log), log)
	loop.Interval = 10 * time.Second // due at once: 20s TTL, two rounds to spare
	for range 3 {
		if err := loop.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "reaches its max TTL"); n != 1 {
		t.Errorf("%d max-TTL warnings, want 1:\n%s", n, logs.String())
	}
}

// vault.rotate credentials at their max TTL roll their service, once
// however many of its tasks hold them, and are not warned of; others are
// warned of. A service whose last update failed is left alone until it
// settles.
func TestLoopRollsServicesBeforeTheirCredentialsEnd(t *testing.T) {
	b := newBed(t, false, nil)
	ctx := context.Background()
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	sw := &fakeSwarm{tasks: map[string]swarm.TaskState{},
		unsettled: map[string]swarmtypes.UpdateState{"svc-paused": swarmtypes.UpdateStatePaused}}
	tr := NewTracker(sw, NewStore(b.plugin, b.mount+"/state"), log)
	issue := func(task, service string, rotate bool) {
		t.Helper()
		s, err := b.root.Auth().Token().CreateOrphan(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "20s", ExplicitMaxTTL: "21s"})
		if err != nil {
			t.Fatal(err)
		}
		sw.set(task, "running")
		req := request(task, "db")
		req.ServiceID, req.ServiceName = service, service+"-name"
		if err := tr.Issued(ctx, req, provider.Credentials{Accessor: s.Auth.Accessor, TokenTTL: 20 * time.Second, Rotate: rotate}); err != nil {
			t.Fatal(err)
		}
	}
	issue("dddddddddddddddddddddddd1", "svc-rot", true)
	issue("dddddddddddddddddddddddd2", "svc-rot", true)
	issue("dddddddddddddddddddddddd3", "svc-plain", false)
	issue("dddddddddddddddddddddddd4", "svc-paused", true)
	// A task an update is replacing already: nothing to roll for it.
	issue("dddddddddddddddddddddddd5", "svc-replaced", true)
	sw.tasks["dddddddddddddddddddddddd5"] = swarm.TaskState{State: "running", Desired: "shutdown"}
	// Another leader's record: rotate survives STATE_PATH.
	if r, found, err := tr.store.Get(ctx, "dddddddddddddddddddddddd1", "db"); err != nil || !found || !r.Rotate {
		t.Fatalf("the record in STATE_PATH: %+v %v %v", r, found, err)
	}
	time.Sleep(2 * time.Second) // less than the TTL is left to the max
	loop := NewLoop(tr, sw, NewVaultCredentials(b.plugin), NewRollouts(sw, log), log)
	loop.Interval = 10 * time.Second // due at once: 20s TTL, two rounds to spare
	for round := range 3 {
		if round == 2 {
			sw.mu.Lock()
			delete(sw.unsettled, "svc-paused")
			sw.mu.Unlock()
		}
		if err := loop.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(sw.forced); got != "[svc-rot svc-paused]" {
		t.Errorf("rolled %s, want svc-rot at the first round and svc-paused once it settled", got)
	}
	out := logs.String()
	if n := strings.Count(out, "reaches its max TTL"); n != 1 || !strings.Contains(out, "docker service update --force svc-plain-name") {
		t.Errorf("%d max-TTL warnings, want 1, for svc-plain:\n%s", n, out)
	}
	if n := strings.Count(out, `msg="rolling the service`); n != 2 ||
		!strings.Contains(out, "the credentials of secret db end at ") ||
		!strings.Contains(out, "and 1 other tasks)\" component=rotation service=svc-rot-name") {
		t.Errorf("want one rollout line for svc-rot (two tasks) and one for svc-paused:\n%s", out)
	}
	if n := strings.Count(out, "last rollout failed"); n != 1 {
		t.Errorf("%d lines for the paused update, want 1:\n%s", n, out)
	}
}

// Docker or Vault down: the round fails with one error and loses nothing;
// once both answer, the next round revokes as it should.
func TestARoundWithDockerOrVaultDownLosesNothing(t *testing.T) {
	b := newBed(t, false, nil)
	ctx := context.Background()
	log := logrus.New()
	log.SetOutput(io.Discard)
	id := "cccccccccccccccccccccccc1"
	sw := &fakeSwarm{tasks: map[string]swarm.TaskState{id: {State: "running"}}}
	tr := NewTracker(sw, NewStore(b.plugin, b.mount+"/state"), log)
	a := b.taskToken(t, id, "1h")
	if err := tr.Issued(ctx, request(id, "tok"), provider.Credentials{Accessor: a.Accessor, TokenTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	loop := NewLoop(tr, sw, NewVaultCredentials(b.plugin), NewRollouts(sw, log), log)
	loop.Timeout = 2 * time.Second
	if err := loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	intact := func(when string) {
		t.Helper()
		if _, gone := b.ttl(t, a.Accessor); gone || tr.Len() != 1 {
			t.Errorf("%s: token gone %v, %d held", when, gone, tr.Len())
		}
		if _, found, err := tr.store.Get(ctx, id, "tok"); !found || err != nil {
			t.Errorf("%s: record found %v, %v", when, found, err)
		}
	}
	// The task ends while the engine does not answer: not taken for gone.
	sw.set(id, "")
	sw.err = errors.New("Cannot connect to the Docker daemon at unix:///run/docker.sock")
	if err := loop.Round(ctx); err == nil || !strings.Contains(err.Error(), "Cannot connect to the Docker daemon") {
		t.Errorf("round with Docker down: %v", err)
	}
	intact("Docker down")
	sw.err = nil
	addr := b.plugin.Address()
	if err := b.plugin.SetAddress("http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if err := loop.Round(ctx); err == nil || !strings.Contains(err.Error(), "cannot revoke the token") {
		t.Errorf("round with Vault down: %v", err)
	}
	b.plugin.SetAddress(addr)
	intact("Vault down")
	if err := loop.Round(ctx); err != nil {
		t.Fatal(err)
	}
	if _, gone := b.ttl(t, a.Accessor); !gone || tr.Len() != 0 {
		t.Errorf("with both back: token gone %v, %d held", gone, tr.Len())
	}
}

// A KV v1 secret rotates by the hash of its value, kept under STATE_PATH:
// the first value seen rolls nothing, a new one rolls the service once, and
// a change made while leadership moves is rolled by the next leader.
func TestRotatorKV1KeepsHashesInState(t *testing.T) {
	b := newBed(t, false, nil)
	ctx := context.Background()
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	t0 := time.Now().Add(-time.Hour)
	sw := &rotationSwarm{
		secrets:  []swarm.Secret{{ID: "s-v1", Name: "v1", Labels: map[string]string{"vault.path": "kv1/app/db", "vault.rotate": "true"}}},
		services: []swarm.Service{{ID: "a", Name: "app", Secrets: []string{"s-v1"}, Oldest: t0}},
	}
	const value = "kv1-value-b7d1e0"
	vs := &versions{values: map[string]string{"v1": value}}
	store := NewStore(b.plugin, b.mount+"/state")
	leader := func() *Rotator {
		r := NewRotator(sw, vs, NewRollouts(sw, log), log)
		r.State = store
		return r
	}
	r := leader()
	round := func(r *Rotator, wantForced string) {
		t.Helper()
		if err := r.Round(ctx); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(sw.forced); got != wantForced {
			t.Fatalf("forced %s, want %s:\n%s", got, wantForced, logs.String())
		}
	}
	round(r, "[]") // first sight: the running tasks hold it
	vs.values["v1"] = value + "-2"
	round(r, "[a]")
	sw.services[0].Oldest = time.Now() // rolled
	round(r, "[a]")

	// A new leader, and a change before its first round.
	vs.values["v1"] = value + "-3"
	round(leader(), "[a a]")
	if !strings.Contains(logs.String(), "secret v1 changed in Vault (no versions: told by its hash), seen ") {
		t.Errorf("no rollout line for KV v1:\n%s", logs.String())
	}
	// What STATE_PATH holds: a key and a hash, no value; and no entry the
	// task lifecycle takes for a stranger's.
	records, bad, err := store.List(ctx)
	if err != nil || len(records) != 0 || len(bad) != 0 {
		t.Errorf("List with rotation's entries: %v %v %v", records, bad, err)
	}
	keys, err := b.root.Logical().List(b.mount + "/metadata/state/rotation")
	if err != nil || keys == nil {
		t.Fatalf("rotation entries: %v", err)
	}
	if n := len(keys.Data["keys"].([]any)); n != 2 {
		t.Errorf("%d rotation entries, want the key and one hash: %v", n, keys.Data)
	}
	for _, k := range keys.Data["keys"].([]any) {
		kv, err := b.root.KVv2(b.mount).Get(ctx, "state/rotation/"+k.(string))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(kv.Data), value) {
			t.Errorf("entry %s holds the value: %v", k, kv.Data)
		}
	}
}

// A vault.type=read secret rotates by hash when its tasks' records show no
// lease; one whose records show a lease (credentials) is never read by
// rotation, which would issue credentials each round.
func TestRotatorHashesStaticReadsOnly(t *testing.T) {
	b := newBed(t, false, nil)
	ctx := context.Background()
	log := logrus.New()
	log.SetOutput(io.Discard)
	t0 := time.Now().Add(-time.Hour)
	read := func(path string) map[string]string {
		return map[string]string{"vault.type": "read", "vault.path": path, "vault.rotate": "true"}
	}
	sw := &rotationSwarm{
		secrets: []swarm.Secret{{ID: "s-static", Name: "static", Labels: read("secret/data/app")}, {ID: "s-dyn", Name: "dyn", Labels: read("database/creds/app")},
			{ID: "s-new", Name: "new", Labels: read("secret/data/other")}},
		services: []swarm.Service{{ID: "a", Name: "app", Secrets: []string{"s-static", "s-dyn", "s-new"}, Oldest: t0}},
	}
	vs := &versions{values: map[string]string{"static": "static-1"}}
	r := NewRotator(sw, vs, NewRollouts(sw, log), log)
	// "new" has no record yet: not read either.
	r.State, r.Reads = NewStore(b.plugin, b.mount+"/state"), staticReads{"static": true, "dyn": false}
	for i, value := range []string{"static-1", "static-2"} {
		vs.values["static"] = value
		if err := r.Round(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 && len(sw.forced) != 0 {
			t.Errorf("the first value seen rolled %v", sw.forced)
		}
	}
	if fmt.Sprint(sw.forced) != "[a]" || fmt.Sprint(vs.hashed) != "[static static]" {
		t.Errorf("forced %v, hashed %v: want the service rolled once for the static read, and only it read", sw.forced, vs.hashed)
	}
}
