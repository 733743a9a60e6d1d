package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

type taskSource struct {
	states map[string]swarmtypes.TaskState
	err    error
	asked  *int
}

func (f taskSource) Task(_ context.Context, id string) (swarm.TaskState, bool, error) {
	if f.asked != nil {
		*f.asked++
	}
	st, ok := f.states[id]
	return swarm.TaskState{State: st}, ok, f.err
}

// NodeTasks: every task runs on the node and service asked about.
func (f taskSource) NodeTasks(context.Context, string, string) (map[string]swarm.TaskState, error) {
	if f.asked != nil {
		*f.asked++
	}
	out := map[string]swarm.TaskState{}
	for id, st := range f.states {
		out[id] = swarm.TaskState{State: st}
	}
	return out, f.err
}

// The engine asks for a task's secrets one after the other, and for those
// of a node's tasks in bursts (a scale-up, a node's reconnect, a new
// leader): one Docker call, a list of the service's tasks on the node,
// answers all of them for admitFresh; after that, a task that started is
// refused again.
func TestAdmitAsksDockerOncePerServiceAndNodeForABurst(t *testing.T) {
	asked := 0
	states := map[string]swarmtypes.TaskState{"running": "running"}
	for i := range 20 {
		states[fmt.Sprintf("t%02d", i)] = "assigned"
	}
	src := taskSource{states: states, asked: &asked}
	tr := NewTracker(src, nil, logrus.New())
	now := time.Now()
	tr.now = func() time.Time { return now }
	req := func(task string) provider.Request {
		return provider.Request{Request: secrets.Request{TaskID: task, SecretName: "s", ServiceID: "svc"}, NodeID: "node"}
	}
	for i := range 20 {
		for range 3 { // three secrets each
			if err := tr.Admit(context.Background(), req(fmt.Sprintf("t%02d", i)), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A task created after the list: one its node has not been sent.
	if err := tr.Admit(context.Background(), req("new"), false); err != nil {
		t.Errorf("a task absent from the list: %v", err)
	}
	if err := tr.Admit(context.Background(), req("running"), false); !errors.Is(err, provider.ErrRefetch) {
		t.Errorf("a re-fetch of a running task in the list: %v", err)
	}
	if asked != 1 {
		t.Errorf("20 task starts of 3 secrets each on one node: %d Docker calls, want 1", asked)
	}
	src.states["t00"] = "running"
	tr.now = func() time.Time { return now.Add(admitFresh) }
	if err := tr.Admit(context.Background(), req("t00"), false); !errors.Is(err, provider.ErrRefetch) || asked != 2 {
		t.Errorf("a re-fetch after the task started: %v, %d Docker calls", err, asked)
	}
	// A request that names no node: the task itself, once for its secrets.
	alone := provider.Request{Request: secrets.Request{TaskID: "t01", SecretName: "s"}}
	for range 3 {
		if err := tr.Admit(context.Background(), alone, false); err != nil {
			t.Fatal(err)
		}
	}
	if asked != 3 {
		t.Errorf("a task start without a node: %d Docker calls in all, want 3", asked)
	}
}

// blockingSource answers lists once released, counting them.
type blockingSource struct {
	taskSource
	release chan struct{}
	lists   atomic.Int32
}

func (b *blockingSource) NodeTasks(ctx context.Context, service, node string) (map[string]swarm.TaskState, error) {
	b.lists.Add(1)
	<-b.release
	return b.taskSource.NodeTasks(ctx, service, node)
}

// Requests that come while a list is under way wait for it, rather than
// each ask the engine.
func TestAdmitRequestsShareAListUnderWay(t *testing.T) {
	src := &blockingSource{taskSource: taskSource{states: map[string]swarmtypes.TaskState{"running": "running"}}, release: make(chan struct{})}
	tr := NewTracker(src, nil, logrus.New())
	errs := make(chan error, 16)
	for i := range 16 {
		task := fmt.Sprintf("t%02d", i)
		if i == 0 {
			task = "running"
		}
		go func() {
			errs <- tr.Admit(context.Background(), provider.Request{Request: secrets.Request{TaskID: task, SecretName: "s", ServiceID: "svc"}, NodeID: "node"}, false)
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); src.lists.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no request listed the service's tasks on the node")
		}
	}
	time.Sleep(20 * time.Millisecond) // the others come while it is under way
	close(src.release)
	refused := 0
	for range 16 {
		if err := <-errs; errors.Is(err, provider.ErrRefetch) {
			refused++
		} else if err != nil {
			t.Error(err)
		}
	}
	if n := src.lists.Load(); n != 1 || refused != 1 {
		t.Errorf("16 requests at once: %d lists, %d refused; want 1 list, the running task refused", n, refused)
	}
}

// Without STATE_PATH, the tracker still refuses a fetch for a task its
// node has seen, and serves one it cannot tell about.
func TestAdmitWithoutAStore(t *testing.T) {
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	tr := NewTracker(taskSource{states: map[string]swarmtypes.TaskState{"assigned": "assigned", "running": "running", "starting": "starting"}}, nil, log)
	req := func(id string) provider.Request {
		return provider.Request{Request: secrets.Request{TaskID: id, SecretName: "s"}}
	}
	for id, refused := range map[string]bool{"assigned": false, "running": true, "starting": true, "unknown": false} {
		err := tr.Admit(context.Background(), req(id), true)
		if errors.Is(err, provider.ErrRefetch) != refused {
			t.Errorf("task %s: %v", id, err)
		}
	}
	if err := tr.Issued(context.Background(), req("assigned"), provider.Credentials{Accessor: "a"}); err != nil || tr.Len() != 0 {
		t.Errorf("Issued without a store: %v, %d held", err, tr.Len())
	}
	down := NewTracker(taskSource{err: errors.New("Cannot connect to the Docker daemon")}, nil, log)
	if err := down.Admit(context.Background(), req("running"), false); err != nil {
		t.Errorf("with Docker down: %v", err)
	}
	if !strings.Contains(logs.String(), "serving it as a first fetch: Cannot connect to the Docker daemon") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// The end rotation rolls for: the first of a capped token, a capped lease,
// a lease Vault does not renew once within the renewal margin, and a
// certificate's expiration once ROTATE_AT of its lifetime has passed.
func TestHeldEnding(t *testing.T) {
	now := time.Now()
	loop := &Loop{Interval: 30 * time.Second, now: func() time.Time { return now }}
	lease := func(renewable bool, issued time.Time) *tracked {
		return &tracked{Record: Record{Issued: issued, Credentials: provider.Credentials{LeaseID: "database/creds/app/x", LeaseTTL: 10 * time.Minute, LeaseRenewable: renewable}}}
	}
	capped := &tracked{tokenUntil: now.Add(time.Minute), tokenCapped: true, leaseUntil: now.Add(40 * time.Second), leaseCapped: true}
	cert := func(issued time.Time) *tracked {
		return &tracked{tokenUntil: now.Add(time.Hour), Record: Record{Issued: issued, Credentials: provider.Credentials{Expires: issued.Add(30 * time.Minute)}}}
	}
	for name, c := range map[string]struct {
		h    *tracked
		want time.Time
	}{
		"renewing":                              {h: &tracked{tokenUntil: now.Add(time.Minute)}},
		"token and lease capped: the first":     {h: capped, want: now.Add(40 * time.Second)},
		"renewable lease":                       {h: lease(true, now.Add(-9*time.Minute))},
		"a lease not renewed, ends later":       {h: lease(false, now)},
		"a lease not renewed, within margin":    {h: lease(false, now.Add(-9*time.Minute)), want: now.Add(time.Minute)},
		"a certificate before 67% of its life":  {h: cert(now.Add(-20 * time.Minute))},
		"a certificate past 67% of its life":    {h: cert(now.Add(-21 * time.Minute)), want: now.Add(9 * time.Minute)},
		"another leader's certificate, expired": {h: cert(now.Add(-time.Hour)), want: now.Add(-30 * time.Minute)},
	} {
		end, ok := c.h.ending(now, loop.due, DefaultRotateAt)
		if ok != !c.want.IsZero() || !end.Equal(c.want) {
			t.Errorf("%s: ending %v %v, want %v", name, end, ok, c.want)
		}
	}
}

// direct runs a call as it is, for tests that load a Tracker by hand.
func direct(ctx context.Context, f func(context.Context) error) error { return f(ctx) }

// A record says all the next leader needs, a certificate's expiration and
// the credentials' ends included, as Vault's KV gives it back (numbers as
// json.Number).
func TestARecordRoundTrips(t *testing.T) {
	r := Record{TaskID: "t1", Secret: "tls_cert", ServiceID: "svc", ServiceName: "web", Issued: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		Credentials: provider.Credentials{Accessor: "acc", TokenTTL: time.Hour, LeaseID: "pki/issue/web/x", LeaseTTL: time.Minute, LeaseRenewable: true,
			Expires: time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC), Rotate: true},
		TokenUntil: time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC), LeaseUntil: time.Date(2026, 12, 1, 12, 1, 0, 0, time.UTC)}
	b, err := json.Marshal(r.data())
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var d map[string]any
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	got, err := recordFrom(d)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("got %+v, %v\nwant %+v", got, err, r)
	}
	r.Expires, r.TokenUntil, r.LeaseUntil = time.Time{}, time.Time{}, time.Time{}
	if got, _ := recordFrom(r.data()); !got.Expires.IsZero() || !got.TokenUntil.IsZero() || !got.LeaseUntil.IsZero() {
		t.Errorf("no expiration and no ends read back as %v, %v, %v", got.Expires, got.TokenUntil, got.LeaseUntil)
	}
}
