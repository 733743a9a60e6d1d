package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// world is a fake swarm, a fake Vault and a fake STATE_PATH on one fake
// clock, with two managers (procs) whose leader side is the real code:
// Watcher, Tracker, Loop, Rotator and Rollouts, over the fakes. Every fake
// call may run another event first (hook), so that the schedule a seed
// draws interleaves with a round, not only between rounds; and each
// checks the promises as it goes (violations).
type world struct {
	rng      *rand.Rand
	now      time.Time
	interval time.Duration
	// leader is the manager that leads the swarm: its dispatcher serves
	// task starts, and IsLeader says so to it alone.
	leader   int
	procs    []*proc
	tasks    map[string]*wtask
	services map[string]*wservice
	tokens   map[string]*wtoken // by accessor
	// live and unsettled keep, in the order they came, the tasks that
	// may not have ended and the tokens neither revoked nor expired:
	// what the checks look at, without sorting maps at every step.
	live      []*wtask
	unsettled []string
	records   map[string]Record // STATE_PATH, by key
	// kv is the rotating KV secret's version, created by Vault's clock
	// (now + skew).
	kv   provider.Version
	skew time.Duration
	// pending are events under way (a request recording, a task
	// starting, an update starting or ending), run in a later step or
	// from a hook, and at the latest when due.
	pending []pendingEvent
	// trace is what happened lately, for a failure's message.
	trace []string
	// faults: until when Vault and Docker fail their calls; faulted:
	// a call failed since the flag was cleared.
	vaultDown, dockerDown time.Time
	faulted               bool
	hooked                bool
	// duringList, when set, runs once Docker built a task list (a test's
	// own interleaving).
	duringList func()
	// lookupDenied: the plugin's policy lacks lookup-accessor.
	lookupDenied bool
	seq          int
	violations   []string
	// counts, for the log line of a run.
	issued, revoked, refused, forced int
	// lookups counts the token lookups asked of Vault.
	lookups int
}

type pendingEvent struct {
	what string
	due  time.Time
	f    func()
}

// later adds an event under way, due within ticks steps.
func (w *world) later(what string, ticks int, f func()) {
	w.pending = append(w.pending, pendingEvent{what: what, due: w.now.Add(time.Duration(ticks) * w.interval / 4), f: f})
}

// run runs pending event i.
func (w *world) run(i int) {
	e := w.pending[i]
	w.pending = slices.Delete(w.pending, i, i+1)
	w.log("%s", e.what)
	e.f()
}

func (w *world) log(format string, a ...any) {
	w.trace = append(w.trace, w.now.Format("15:04:05.0")+" "+fmt.Sprintf(format, a...))
	if len(w.trace) >= 6000 {
		w.trace = append(w.trace[:0], w.trace[len(w.trace)-3000:]...)
	}
}

type wtask struct {
	id, service string
	state       swarmtypes.TaskState
	desired     swarmtypes.TaskState
	created     time.Time
	removed     bool // gone from the swarm's task list
}

func (t *wtask) ended() bool {
	return t.removed || swarm.TaskState{State: t.state, Desired: t.desired}.Ended()
}

type wservice struct {
	id string
	// rotate: its tasks' credentials have vault.rotate and a max TTL, so
	// the Loop rolls it; the rotator rolls it for the KV secret.
	rotate bool
	// What swarm keeps: the spec's force counter and the previous spec's,
	// the update status (nil: cleared by an update, not started since),
	// the object's version.
	force, prevForce uint64
	hasPrev          bool
	status           *swarmtypes.UpdateStatus
	version          uint64
	updated          time.Time
	// pending: when a forced update that swarm has not started was made
	// (the world's own truth, to check against).
	pending time.Time
}

type wtoken struct {
	task     string
	expires  time.Time
	max      time.Time
	revoked  bool
	recorded bool // its record was written to STATE_PATH
	// clean counts the clean leader rounds since its task ended and it
	// was recorded.
	clean int
}

type proc struct {
	i        int
	tracker  *Tracker
	loop     *Loop
	rot      *Rotator
	rollouts *Rollouts
	watcher  *Watcher
	term     *term
	inTerm   bool
	next     time.Time // its next round
}

func newWorld(seed uint64) *world {
	w := &world{
		rng:      rand.New(rand.NewPCG(seed, seed^0x5eed)),
		now:      time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		interval: 10 * time.Second,
		tasks:    map[string]*wtask{},
		services: map[string]*wservice{"s1": {id: "s1"}, "s2": {id: "s2", rotate: true}, "s3": {id: "s3"}},
		tokens:   map[string]*wtoken{},
		records:  map[string]Record{},
	}
	w.skew = time.Duration(w.rng.IntN(41)-20) * time.Second
	w.kv = provider.Version{Number: 1, Created: w.now.Add(-time.Hour)}
	log := logrus.New()
	log.SetOutput(io.Discard)
	for i := range 2 {
		p := &proc{i: i}
		sw := &procSwarm{w: w, i: i}
		p.tracker = NewTracker(sw, worldStore{w}, log)
		p.tracker.now = w.clock
		p.rollouts = NewRollouts(sw, log)
		p.loop = NewLoop(p.tracker, sw, worldVault{w}, p.rollouts, log)
		p.loop.now, p.loop.Interval, p.loop.Workers = w.clock, w.interval, 1
		p.rot = NewRotator(sw, worldVersions{w}, p.rollouts, log)
		p.rot.now = w.clock
		p.watcher = NewWatcher(sw, log)
		p.watcher.Began = func() { p.inTerm, p.next = true, w.now; p.rot.begin() }
		p.watcher.Ended = func() { p.inTerm = false; p.tracker.Forget() }
		w.procs = append(w.procs, p)
	}
	return w
}

func (w *world) clock() time.Time { return w.now }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (w *world) violate(format string, a ...any) {
	w.violations = append(w.violations, fmt.Sprintf("at %s: ", w.now.Format("15:04:05"))+fmt.Sprintf(format, a...))
}

// call is every fake call's start: a fault, or another event first.
func (w *world) call(down time.Time) error {
	if !w.hooked && w.rng.IntN(4) == 0 {
		w.hooked = true
		w.event(false)
		w.hooked = false
	}
	if w.now.Before(down) {
		w.faulted = true
		return errors.New("injected fault")
	}
	return nil
}

// step advances the clock by a tick and runs what is due: polls, rounds,
// and random events between them.
func (w *world) step() {
	w.now = w.now.Add(w.interval / 4)
	for i := 0; i < len(w.pending); {
		if !w.now.Before(w.pending[i].due) {
			w.run(i)
			continue
		}
		i++
	}
	for range w.rng.IntN(3) {
		w.event(true)
	}
	ctx := context.Background()
	for _, p := range w.procs {
		if w.rng.IntN(2) == 0 {
			was := p.inTerm
			p.term = p.watcher.poll(ctx, p.term)
			if p.inTerm != was {
				w.log("manager %d: term %v", p.i, p.inTerm)
			}
		}
		if !p.inTerm || w.now.Before(p.next) {
			continue
		}
		p.next = w.now.Add(w.interval)
		w.log("manager %d: round", p.i)
		w.round(p)
	}
	w.checkExpiry()
}

// event runs one random event. top: not from inside a call, so that
// leadership may move and faults begin.
func (w *world) event(top bool) {
	switch n := w.rng.IntN(10); {
	case n < 3:
		w.startTask()
	case n < 5 && len(w.pending) > 0:
		w.run(w.rng.IntN(len(w.pending)))
	case n < 6:
		w.endTask()
	case n < 7:
		w.refetch()
	case n < 8 && top:
		if w.rng.IntN(3) == 0 {
			w.leader = 1 - w.leader
			w.log("manager %d leads", w.leader)
		}
	case n < 9 && top:
		// One fault window at a time, three intervals apart: Vault down
		// for at most an interval, Docker for at most two.
		quiet := !w.now.Before(later(w.vaultDown, w.dockerDown).Add(3 * w.interval))
		switch w.rng.IntN(6) {
		case 0:
			if !quiet {
				break
			}
			// Renewals are due with two rounds to spare: one round
			// may fail.
			w.vaultDown = w.now.Add(time.Duration(w.rng.IntN(int(w.interval/time.Second)+1)) * time.Second)
			w.log("Vault down until %s", w.vaultDown.Format("15:04:05"))
		case 1:
			if !quiet {
				break
			}
			w.dockerDown = w.now.Add(time.Duration(w.rng.IntN(3)) * w.interval)
			w.log("Docker down until %s", w.dockerDown.Format("15:04:05"))
		case 2:
			w.kv = provider.Version{Number: w.kv.Number + 1, Created: w.now.Add(w.skew)}
			w.log("KV version %d", w.kv.Number)
		}
	}
}

// round runs one round of p's loop and rotator, and checks what a clean
// round of the leader promises.
func (w *world) round(p *proc) {
	ctx := context.Background()
	leading := w.leader == p.i
	var recorded []string
	for _, a := range w.unsettled {
		if w.tokens[a].recorded {
			recorded = append(recorded, a)
		}
	}
	w.faulted = false
	err := p.loop.Round(ctx)
	p.rot.Round(ctx)
	w.log("manager %d: round done: %v (faulted %v)", p.i, err, w.faulted)
	if err != nil || w.faulted || !leading || w.leader != p.i {
		return
	}
	// A clean round of the leader: every credential of an ended task
	// that was recorded before it is revoked within two such rounds, and
	// every recorded credential of a task that has not ended is held.
	for _, a := range recorded {
		tok := w.tokens[a]
		if tok.revoked || !w.now.Before(tok.expires) {
			continue
		}
		if w.tasks[tok.task].ended() {
			if tok.clean++; tok.clean >= 2 {
				w.violate("the credential of ended task %s is not revoked after %d clean rounds of the leader", tok.task, tok.clean)
			}
			continue
		}
		if h, ok := p.tracker.byKey[key(tok.task, "db")]; !ok || h.Accessor != a {
			w.violate("the leader does not hold the record of running task %s after a clean round", tok.task)
		}
	}
}

// checkExpiry: a recorded credential of a task that has not ended never
// expires while its max TTL is far (the leader renews it in time). One
// whose record could not be written is renewed by its issuer while it
// leads, and lives for its TTL after (the request path warns).
func (w *world) checkExpiry() {
	for _, a := range w.unsettledTokens() {
		tok := w.tokens[a]
		if tok.recorded && !tok.revoked && !w.tasks[tok.task].ended() && !w.now.Before(tok.expires) && tok.expires.Before(tok.max) {
			w.violate("the credential of task %s, which has not ended, expired", tok.task)
			tok.revoked = true // once
		}
	}
}

func (w *world) startTask() {
	if len(w.liveTasks()) >= 30 {
		w.endTask()
		return
	}
	w.startTaskOf([]string{"s1", "s2", "s3"}[w.rng.IntN(3)])
}

// request is the leader's dispatcher asking its plugin for the task's
// secret: the request path's Admit, a mint, and Issued later (the record
// written while other things happen).
func (w *world) request(t *wtask) {
	p := w.procs[w.leader]
	req := provider.Request{Request: secrets.Request{TaskID: t.id, SecretName: "db", ServiceID: t.service, ServiceName: t.service}, NodeID: "n1"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.tracker.Admit(ctx, req, true); err != nil {
		w.refused++
		w.log("manager %d refuses task %s: %v", p.i, t.id, err)
		return
	}
	w.seq++
	accessor := fmt.Sprintf("acc%04d", w.seq)
	// A TTL of twelve rounds: half of it outlasts a failover (a new
	// leader's watcher, a Docker outage) and a failed round.
	ttl := 12 * w.interval
	max := w.now.Add(time.Hour)
	if w.services[t.service].rotate {
		max = w.now.Add(16 * w.interval)
	}
	tok := &wtoken{task: t.id, expires: w.now.Add(ttl), max: max}
	w.tokens[accessor] = tok
	w.unsettled = append(w.unsettled, accessor)
	w.issued++
	w.log("manager %d issues %s to task %s", p.i, accessor, t.id)
	record := func() {
		err := p.tracker.Issued(context.Background(), req, provider.Credentials{Accessor: accessor, TokenTTL: ttl, Rotate: w.services[t.service].rotate})
		switch {
		case errors.Is(err, provider.ErrRefetch):
			// As the provider does: revoke what it minted, fail the task.
			tok.revoked = true
			w.failTask(t)
		}
		w.log("recorded %s: %v", accessor, err)
	}
	// Most requests record at once; some while other things happen.
	if w.rng.IntN(2) == 0 {
		w.log("manager %d records %s", p.i, accessor)
		record()
		return
	}
	w.later("manager "+strconv.Itoa(p.i)+" records "+accessor, 1, record)
}

func (w *world) failTask(t *wtask) {
	if !t.ended() {
		t.state = swarmtypes.TaskStateRejected
	}
}

func (w *world) endTask() {
	live := w.liveTasks()
	if len(live) == 0 {
		return
	}
	t := live[w.rng.IntN(len(live))]
	w.log("task %s ends", t.id)
	switch w.rng.IntN(3) {
	case 0:
		t.state = swarmtypes.TaskStateComplete
	case 1:
		t.state = swarmtypes.TaskStateFailed
	default:
		t.removed = true
	}
}

// refetch is a node reconnecting, or a new leader, asking again for a task
// that has not ended.
func (w *world) refetch() {
	if live := w.liveTasks(); len(live) > 0 {
		w.request(live[w.rng.IntN(len(live))])
	}
}

func (w *world) liveTasks() []*wtask {
	w.live = slices.DeleteFunc(w.live, (*wtask).ended)
	return slices.Clone(w.live)
}

// unsettledTokens are the tokens neither revoked nor expired, and those
// that were revoked or expired since the last call (once more, for
// checkExpiry, its one caller at the end of each step).
func (w *world) unsettledTokens() []string {
	out := slices.Clone(w.unsettled)
	w.unsettled = slices.DeleteFunc(w.unsettled, func(a string) bool {
		tok := w.tokens[a]
		return tok.revoked || !w.now.Before(tok.expires)
	})
	return out
}

// procSwarm is one manager's Docker API.
type procSwarm struct {
	w *world
	i int
}

func (s *procSwarm) IsLeader(context.Context) (bool, error) {
	if err := s.w.call(s.w.dockerDown); err != nil {
		return false, err
	}
	return s.w.leader == s.i, nil
}

func (s *procSwarm) Task(_ context.Context, id string) (swarm.TaskState, bool, error) {
	if err := s.w.call(s.w.dockerDown); err != nil {
		return swarm.TaskState{}, false, err
	}
	t, ok := s.w.tasks[id]
	if !ok || t.removed {
		return swarm.TaskState{}, false, nil
	}
	return swarm.TaskState{State: t.state, Desired: t.desired}, true, nil
}

// NodeTasks: the world's tasks all run on node n1. It runs no other event
// first: one would be a request waiting for this very list, which one
// goroutine cannot model (Admit's own tests cover requests that wait).
func (s *procSwarm) NodeTasks(_ context.Context, service, node string) (map[string]swarm.TaskState, error) {
	if s.w.now.Before(s.w.dockerDown) {
		s.w.faulted = true
		return nil, errors.New("injected fault")
	}
	out := map[string]swarm.TaskState{}
	for _, t := range s.w.tasks {
		if t.service == service && node == "n1" && !t.removed {
			out[t.id] = swarm.TaskState{State: t.state, Desired: t.desired}
		}
	}
	return out, nil
}

func (s *procSwarm) Tasks(context.Context, []string) (map[string]swarm.TaskState, error) {
	if err := s.w.call(s.w.dockerDown); err != nil {
		return nil, err
	}
	out := map[string]swarm.TaskState{}
	for id, t := range s.w.tasks {
		if !t.removed {
			out[id] = swarm.TaskState{State: t.state, Desired: t.desired}
		}
	}
	// Docker built the list; what happens now is not in it.
	s.w.call(time.Time{})
	if f := s.w.duringList; f != nil {
		s.w.duringList = nil
		f()
	}
	return out, nil
}

// ForceUpdate is swarm.Engine's own, over a Docker API that keeps the
// world's services as swarm does: an update clears the status, the
// updater sets it when it starts a moment later, and the update replaces
// every task of the service.
func (s *procSwarm) ForceUpdate(ctx context.Context, id string) error {
	if err := s.w.call(s.w.dockerDown); err != nil {
		return err
	}
	e := swarm.NewEngine(serviceAPI{w: s.w})
	e.Now = s.w.clock
	return e.ForceUpdate(ctx, id)
}

// serviceAPI is the part of the Docker API ForceUpdate uses.
type serviceAPI struct {
	swarm.DockerAPI
	w *world
}

func (a serviceAPI) ServiceInspectWithRaw(_ context.Context, id string, _ swarmtypes.ServiceInspectOptions) (swarmtypes.Service, []byte, error) {
	svc := a.w.services[id]
	out := swarmtypes.Service{ID: id, Meta: swarmtypes.Meta{Version: swarmtypes.Version{Index: svc.version}, UpdatedAt: svc.updated}, UpdateStatus: svc.status}
	out.Spec.Name = id
	out.Spec.TaskTemplate.ForceUpdate = svc.force
	if svc.hasPrev {
		out.PreviousSpec = &swarmtypes.ServiceSpec{}
		out.PreviousSpec.TaskTemplate.ForceUpdate = svc.prevForce
	}
	return out, nil, nil
}

func (a serviceAPI) ServiceUpdate(_ context.Context, id string, version swarmtypes.Version, spec swarmtypes.ServiceSpec, _ swarmtypes.ServiceUpdateOptions) (swarmtypes.ServiceUpdateResponse, error) {
	w := a.w
	svc := w.services[id]
	if version.Index != svc.version {
		return swarmtypes.ServiceUpdateResponse{}, errors.New("update out of sequence")
	}
	if !svc.pending.IsZero() {
		w.violate("service %s forced again before swarm started the update forced at %s", id, svc.pending.Format("15:04:05"))
	}
	svc.prevForce, svc.hasPrev, svc.force = svc.force, true, spec.TaskTemplate.ForceUpdate
	svc.status, svc.version, svc.pending, svc.updated = nil, svc.version+1, w.now, w.now
	w.forced++
	w.log("service %s forced", id)
	w.later("service "+id+" update starts", 2, func() {
		started := w.now
		svc.status, svc.pending = &swarmtypes.UpdateStatus{State: swarmtypes.UpdateStateUpdating, StartedAt: &started}, time.Time{}
		w.later("service "+id+" update done", 4, func() {
			for _, t := range w.liveTasks() {
				if t.service == id {
					t.desired, t.state = swarmtypes.TaskStateShutdown, swarmtypes.TaskStateShutdown
					w.startTaskOf(id)
				}
			}
			svc.status = &swarmtypes.UpdateStatus{State: swarmtypes.UpdateStateCompleted, StartedAt: &started}
		})
	})
	return swarmtypes.ServiceUpdateResponse{}, nil
}

func (w *world) startTaskOf(service string) {
	w.seq++
	t := &wtask{id: fmt.Sprintf("t%04d", w.seq), service: service, state: swarmtypes.TaskStateAssigned, desired: swarmtypes.TaskStateRunning, created: w.now}
	w.tasks[t.id] = t
	w.live = append(w.live, t)
	w.log("task %s of %s created", t.id, service)
	w.request(t)
	w.later("task "+t.id+" runs", 4, func() {
		if t.state == swarmtypes.TaskStateAssigned {
			t.state = swarmtypes.TaskStateRunning
		}
	})
}

func (s *procSwarm) PluginName(context.Context) (string, error) { return "vault:latest", nil }

func (s *procSwarm) RotatingSecrets(context.Context, string, ...string) ([]swarm.Secret, error) {
	if err := s.w.call(s.w.dockerDown); err != nil {
		return nil, err
	}
	return []swarm.Secret{{ID: "kv", Name: "kv", Labels: map[string]string{"vault.path": "secret/kv", "vault.rotate": "true"}}}, nil
}

// ServicesUsing: s2 uses the rotating KV secret.
func (s *procSwarm) ServicesUsing(context.Context, []string) ([]swarm.Service, error) {
	w := s.w
	if err := w.call(w.dockerDown); err != nil {
		return nil, err
	}
	svc := swarm.Service{ID: "s2", Name: "s2", Secrets: []string{"kv"}}
	if st := w.services["s2"].status; st != nil {
		svc.Update = st.State
	}
	for _, t := range w.liveTasks() {
		if t.service == "s2" && t.desired == swarmtypes.TaskStateRunning && (svc.Oldest.IsZero() || t.created.Before(svc.Oldest)) {
			svc.Oldest = t.created
		}
	}
	return []swarm.Service{svc}, nil
}

// worldVault is Vault's token store, by accessor.
type worldVault struct{ w *world }

func (v worldVault) token(accessor string) (*wtoken, error) {
	if err := v.w.call(v.w.vaultDown); err != nil {
		return nil, err
	}
	tok, ok := v.w.tokens[accessor]
	if !ok || tok.revoked || !v.w.now.Before(tok.expires) {
		return nil, ErrTokenGone
	}
	return tok, nil
}

func (v worldVault) RenewToken(_ context.Context, accessor string, ttl time.Duration) (time.Duration, error) {
	tok, err := v.token(accessor)
	if err != nil {
		return 0, err
	}
	v.w.log("renewed %s of task %s", accessor, tok.task)
	tok.expires = v.w.now.Add(ttl)
	if tok.max.Before(tok.expires) {
		tok.expires = tok.max
	}
	return tok.expires.Sub(v.w.now), nil
}

func (v worldVault) RenewLease(context.Context, string, time.Duration) (time.Duration, error) {
	return 0, ErrLeaseNotRenewable
}

func (v worldVault) RevokeToken(_ context.Context, accessor string) error {
	tok, err := v.token(accessor)
	if err != nil {
		return err
	}
	if t := v.w.tasks[tok.task]; !t.ended() {
		v.w.violate("the credential of task %s, which is %s, was revoked", tok.task, t.state)
	}
	tok.revoked = true
	v.w.revoked++
	v.w.log("revoked %s of task %s", accessor, tok.task)
	return nil
}

func (v worldVault) LookupToken(_ context.Context, accessor string) (TokenInfo, error) {
	if v.w.lookupDenied {
		return TokenInfo{}, ErrLookupDenied
	}
	v.w.lookups++
	tok, err := v.token(accessor)
	if err != nil {
		return TokenInfo{}, err
	}
	return TokenInfo{TaskID: tok.task, TTL: tok.expires.Sub(v.w.now)}, nil
}

// worldStore is STATE_PATH on KV v2: Put creates only.
type worldStore struct{ w *world }

func (s worldStore) Path() string                    { return "secret/state" }
func (s worldStore) Check(ctx context.Context) error { return s.w.call(s.w.vaultDown) }

func (s worldStore) Names(context.Context) ([]string, error) {
	if err := s.w.call(s.w.vaultDown); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(s.w.records)), nil
}

func (s worldStore) Get(_ context.Context, taskID, secret string) (Record, bool, error) {
	if err := s.w.call(s.w.vaultDown); err != nil {
		return Record{}, false, err
	}
	r, ok := s.w.records[key(taskID, secret)]
	return r, ok, nil
}

func (s worldStore) Put(_ context.Context, r Record) error {
	if err := s.w.call(s.w.vaultDown); err != nil {
		return err
	}
	if had, ok := s.w.records[r.Key()]; ok {
		if had.Accessor == r.Accessor {
			return nil // this very record (Store.Put's retry)
		}
		return ErrRecorded
	}
	s.w.records[r.Key()] = r
	// A record written after its token expired (unwritten until then) is
	// the loss the request path warned of, not the leader's.
	if tok := s.w.tokens[r.Accessor]; s.w.now.Before(tok.expires) {
		tok.recorded = true
	}
	return nil
}

// Update writes a record again, whatever is there (a record another
// manager deleted comes back, as in Vault).
func (s worldStore) Update(_ context.Context, r Record) error {
	if err := s.w.call(s.w.vaultDown); err != nil {
		return err
	}
	s.w.records[r.Key()] = r
	return nil
}

func (s worldStore) Delete(_ context.Context, taskID, secret string) error {
	if err := s.w.call(s.w.vaultDown); err != nil {
		return err
	}
	delete(s.w.records, key(taskID, secret))
	return nil
}

// worldVersions is the rotating KV v2 secret's version, as Vault tells it.
type worldVersions struct{ w *world }

func (v worldVersions) CurrentVersion(context.Context, provider.Request) (provider.Version, error) {
	if err := v.w.call(v.w.vaultDown); err != nil {
		return provider.Version{}, err
	}
	return v.w.kv, nil
}
func (v worldVersions) ReadScope(req provider.Request) (string, error) { return req.SecretName, nil }
func (v worldVersions) Fingerprint(context.Context, provider.Request, []byte) (string, error) {
	return "", errors.New("no KV v1 here")
}
func (v worldVersions) ForgetReused(map[string]string) {}

// summary says what a run did, for the log.
func (w *world) summary() string {
	return fmt.Sprintf("%d tasks, %d credentials issued, %d revoked, %d requests refused, %d forced updates; skew %v",
		len(w.tasks), w.issued, w.revoked, w.refused, w.forced, w.skew)
}

func (w *world) failures() string {
	trace := w.trace[max(0, len(w.trace)-3000):]
	return strings.Join(w.violations, "\n") + "\nlately:\n  " + strings.Join(trace, "\n  ")
}
