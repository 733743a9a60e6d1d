package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
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

// The engine asks for a task's secrets one after the other: one Docker
// call answers for all of them, for admitFresh; after that, a task that
// started is refused again.
func TestAdmitAsksDockerOncePerTaskStart(t *testing.T) {
	asked := 0
	src := taskSource{states: map[string]swarmtypes.TaskState{"t": "assigned"}, asked: &asked}
	tr := NewTracker(src, nil, logrus.New())
	now := time.Now()
	tr.now = func() time.Time { return now }
	req := provider.Request{Request: secrets.Request{TaskID: "t", SecretName: "s"}}
	for range 5 {
		if err := tr.Admit(context.Background(), req, false); err != nil {
			t.Fatal(err)
		}
	}
	if asked != 1 {
		t.Errorf("5 secrets of one task start: %d Docker calls, want 1", asked)
	}
	src.states["t"] = "running"
	tr.now = func() time.Time { return now.Add(admitFresh) }
	if err := tr.Admit(context.Background(), req, false); !errors.Is(err, provider.ErrRefetch) || asked != 2 {
		t.Errorf("a re-fetch after the task started: %v, %d Docker calls", err, asked)
	}
	// A task that started is never kept as fresh.
	tr.Admit(context.Background(), req, false)
	if asked != 3 {
		t.Errorf("a started task's answer was kept: %d Docker calls, want 3", asked)
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

// A record says all the next leader needs, a certificate's expiration
// included, as Vault's KV gives it back (numbers as json.Number).
func TestARecordRoundTrips(t *testing.T) {
	r := Record{TaskID: "t1", Secret: "tls_cert", ServiceID: "svc", ServiceName: "web", Issued: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		Credentials: provider.Credentials{Accessor: "acc", TokenTTL: time.Hour, LeaseID: "pki/issue/web/x", LeaseTTL: time.Minute, LeaseRenewable: true,
			Expires: time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC), Rotate: true}}
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
	r.Expires = time.Time{}
	if got, _ := recordFrom(r.data()); !got.Expires.IsZero() {
		t.Errorf("no expiration read back as %v", got.Expires)
	}
}
