package lifecycle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// TaskSource tells the states of tasks; *swarm.Engine implements it.
type TaskSource interface {
	// Task is one task's state.
	Task(ctx context.Context, id string) (state swarm.TaskState, found bool, err error)
	// NodeTasks are the tasks of one service on one node, by ID.
	NodeTasks(ctx context.Context, serviceID, nodeID string) (map[string]swarm.TaskState, error)
}

// Records is where the records are kept (STATE_PATH); *Store implements
// it.
type Records interface {
	// Path names the place, for log lines.
	Path() string
	// Check says what the plugin's token lacks to keep records there.
	Check(ctx context.Context) error
	// Names lists the entries that may be records: each names a task and
	// a secret.
	Names(ctx context.Context) ([]string, error)
	Get(ctx context.Context, taskID, secret string) (r Record, found bool, err error)
	Put(ctx context.Context, r Record) error
	// Update writes a record again (after a renewal), whatever is there.
	Update(ctx context.Context, r Record) error
	Delete(ctx context.Context, taskID, secret string) error
}

// Tracker implements provider.Tracker: it refuses repeated fetches and
// records issued credentials, in Vault and in memory for the Loop. It owns
// the consistency of the two: what this process issued is held from the
// moment it is issued, and what any leader recorded is held from the
// round after its record is written.
type Tracker struct {
	tasks TaskSource
	store Records // nil without STATE_PATH
	log   logrus.FieldLogger
	now   func() time.Time

	mu sync.Mutex
	// byKey holds one credential per task and secret (Record.Key).
	byKey map[string]*tracked
	// dups are credentials held in memory only: a second credential for a
	// task and secret whose record another request wrote first (a re-fetch
	// served when neither the engine nor STATE_PATH could tell). Both are
	// renewed and revoked; the dup only while this manager leads.
	dups map[*tracked]bool
	// seq numbers what is held in the order it came: the Loop acts only on
	// what was held before it listed the swarm's tasks.
	seq uint64
	// complete: byKey has every record STATE_PATH had at the last load of
	// this term, so Admit need not ask Vault.
	complete bool
	// skipped are the entries of STATE_PATH not read again at each load:
	// entries that are no records, and records whose token belongs to
	// another task (a forged or stale entry), each reported once.
	skipped map[string]bool
	// views are the engine's lists of a service's tasks on a node that
	// Admit asked for lately.
	views map[viewKey]*view
}

// admitFresh is how long a view answers Admit. The dispatcher asks for
// the secrets of a node's new tasks one after the other, so one list of
// the service's tasks on that node answers a burst of task starts (and a
// task's k secrets) where a Docker call per task made each wait for the
// engine. A task absent from a view was created after it was asked for:
// one the node cannot have been sent before, as a re-fetch comes at a
// node's reconnect or a new leader, later than this; one that does come
// within it finds a task that had not started at the list, and credentials
// are still refused by their record.
const admitFresh = 2 * time.Second

// maxViews bounds views; those past admitFresh are dropped when it fills.
const maxViews = 1024

// A view is the engine's list of one service's tasks on one node, shared
// by the requests of its admitFresh: the first asks, the others wait for
// its answer.
type view struct {
	at    time.Time     // when the list was asked for
	done  chan struct{} // closed once tasks and err are set
	tasks map[string]swarm.TaskState
	err   error
}

// viewKey names a view: a service's tasks on a node, or one task's state
// for a request that names neither (task set).
type viewKey struct{ service, node, task string }

// tracked is a record with what the leader learnt of it since: when its token
// and lease expire, as of their last renewal.
type tracked struct {
	Record
	// seq is when it came to be held (Tracker.seq).
	seq uint64
	// verified: the token is known to be the record's task's. What this
	// process issued is; a record read from STATE_PATH is once Vault's
	// lookup of the accessor names its task.
	verified bool
	// unrecorded: its write to STATE_PATH failed; the Loop writes it again
	// (guarded by the Tracker's mu: the request path sets it).
	unrecorded bool
	// stored: STATE_PATH holds its record, written by this process (its
	// check-and-set write done) or read there (guarded by mu).
	stored bool
	// tokenUntil and leaseUntil are when the token and lease end, as of
	// their last renewal; zero when unknown (a record an older plugin
	// wrote): the round that finds them due learns them.
	tokenUntil, leaseUntil time.Time
	// moved: tokenUntil or leaseUntil changed since the record was last
	// written or read, so the Loop writes it again.
	moved bool
	// capped: a renewal no longer moves the end (a max TTL), so renewing
	// again would change nothing; warned: that end was logged.
	tokenCapped, leaseCapped bool
	tokenWarned, leaseWarned bool
	// leaseFailing: the last renewal of the lease failed, for a reason
	// Vault did not say is its end (the database behind it down, or its
	// role deleted: Vault's answer does not tell which).
	leaseFailing bool
	// expiryWarned: a certificate's expiration was logged.
	expiryWarned bool
	// rolled: the task's service was rolled for these credentials
	// (vault.rotate), so that its other rounds do not roll it again.
	rolled bool
}

// record is what STATE_PATH is to hold for h: its record, with the ends
// the leader knows now.
func (h *tracked) record() Record {
	r := h.Record
	r.TokenUntil, r.LeaseUntil = h.tokenUntil, h.leaseUntil
	return r
}

// ending tells when the credentials end for good, if that is in sight: a
// token or lease that renewals no longer extend, or a lease Vault does not
// renew, within the margin the Loop renews in; or an expiration nothing
// renews (a certificate's) once rotateAt of its lifetime has passed.
func (h *tracked) ending(now time.Time, margin func(until time.Time, ttl time.Duration) bool, rotateAt float64) (end time.Time, ok bool) {
	take := func(t time.Time) {
		if t.IsZero() {
			t = now // a lease Vault no longer knows
		}
		if !ok || t.Before(end) {
			end, ok = t, true
		}
	}
	if h.tokenCapped {
		take(h.tokenUntil)
	}
	if h.leaseCapped {
		take(h.leaseUntil)
	}
	// A lease whose renewals keep failing, with a quarter of its TTL
	// left: a backend that is back in time is renewed before the rollout
	// would be needed; one that stays down (a role deleted) would
	// otherwise let it end under the task.
	if h.leaseFailing && !h.leaseUntil.IsZero() && h.leaseUntil.Sub(now) <= h.LeaseTTL/4 {
		take(h.leaseUntil)
	}
	if h.LeaseID != "" && !h.LeaseRenewable {
		until := h.leaseUntil
		if until.IsZero() {
			until = h.Issued.Add(h.LeaseTTL) // another leader's record
		}
		if margin(until, h.LeaseTTL) {
			take(until)
		}
	}
	if !h.Expires.IsZero() {
		life := h.Expires.Sub(h.Issued)
		if !now.Before(h.Issued.Add(time.Duration(float64(life) * rotateAt))) {
			take(h.Expires)
		}
	}
	return end, ok
}

// NewTracker returns a Tracker. Without a store (STATE_PATH unset: pass
// nil) it only refuses repeated fetches for tasks that have started.
func NewTracker(tasks TaskSource, store Records, log logrus.FieldLogger) *Tracker {
	return &Tracker{tasks: tasks, store: store, log: log.WithField("component", "lifecycle"), now: time.Now,
		byKey: map[string]*tracked{}, dups: map[*tracked]bool{}, skipped: map[string]bool{}, views: map[viewKey]*view{}}
}

// Admit refuses a request for a task that holds the secret already: one
// its node has acknowledged (the dispatcher fetches a task's secrets before
// its node sees it), or, for credentials, one STATE_PATH has a record of.
// The latter is a task whose first value was lost with its leader: refused,
// it fails and swarm replaces it with a new task, which gets a clean fetch.
// When the Docker engine or Vault cannot tell, the request is served as a
// first fetch: a credential too many is better than a task that cannot
// start.
//
// Each of the two asks gets a third of the time the request has left, so
// that an engine or a Vault that hangs rather than refuses leaves the
// request the time to be served.
func (t *Tracker) Admit(ctx context.Context, req provider.Request, credentials bool) error {
	st, found, err := t.taskState(ctx, req)
	switch {
	case err != nil:
		t.log.WithField("task_id", req.TaskID).Warnf("cannot tell whether the task holds its secrets already, so serving it as a first fetch: %v", err)
	case found && st.Delivered():
		return fmt.Errorf("%w: task %s is %s, so it holds this secret from an earlier fetch (its node reconnected, or a new leader sent it again)", provider.ErrRefetch, req.TaskID, st.State)
	}
	if !credentials || t.store == nil {
		return nil
	}
	t.mu.Lock()
	_, mine := t.byKey[key(req.TaskID, req.SecretName)]
	complete := t.complete
	t.mu.Unlock()
	if !mine && !complete {
		// Before the Loop has read STATE_PATH (a new leader's first
		// interval), another leader's records are only in Vault.
		actx, cancel := share(ctx)
		var err error
		_, mine, err = t.store.Get(actx, req.TaskID, req.SecretName)
		cancel()
		if err != nil {
			t.log.WithField("task_id", req.TaskID).Warnf("cannot tell whether the task was issued credentials already, so serving it as a first fetch: %v", err)
			return nil
		}
	}
	if mine {
		return fmt.Errorf("%w: task %s was issued credentials for it before (STATE_PATH) and has not started; swarm replaces it with a new task", provider.ErrRefetch, req.TaskID)
	}
	return nil
}

// detachedShare is share's time on a context of its own (a minute if ctx
// has no deadline): a view answers the requests that wait for it too, so
// its list runs to that deadline even if the request that asked ends
// first.
func detachedShare(ctx context.Context) (context.Context, context.CancelFunc) {
	d := time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		d = time.Until(deadline) / 3
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// share is a third of what is left of ctx's deadline, if it has one.
func share(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(deadline)/3)
}

// taskState is the request's task's state as the engine tells it: from a
// view of its service's tasks on its node (found false: created after the
// view), or, for a request that names no service or node, from the task
// itself.
func (t *Tracker) taskState(ctx context.Context, req provider.Request) (st swarm.TaskState, found bool, err error) {
	k := viewKey{service: req.ServiceID, node: req.NodeID}
	if k.service == "" || k.node == "" {
		k = viewKey{task: req.TaskID}
	}
	v := t.view(ctx, k)
	select {
	case <-v.done:
	case <-ctx.Done():
		return swarm.TaskState{}, false, ctx.Err()
	}
	if v.err != nil {
		return swarm.TaskState{}, false, v.err
	}
	st, found = v.tasks[req.TaskID]
	return st, found, nil
}

// view is the view of k that answers now: one asked for within admitFresh
// (maybe still under way), or one this call asks for, with a third of the
// time ctx has left. A failed list answers no later request.
func (t *Tracker) view(ctx context.Context, k viewKey) *view {
	t.mu.Lock()
	now := t.now()
	v := t.views[k]
	if v != nil && now.Sub(v.at) < admitFresh && !v.failed() {
		t.mu.Unlock()
		return v
	}
	if len(t.views) >= maxViews {
		for key, old := range t.views {
			if now.Sub(old.at) >= admitFresh || old.failed() {
				delete(t.views, key)
			}
		}
	}
	v = &view{at: now, done: make(chan struct{})}
	if len(t.views) < maxViews {
		t.views[k] = v
	}
	t.mu.Unlock()
	actx, cancel := detachedShare(ctx)
	defer cancel()
	if k.task != "" {
		var st swarm.TaskState
		var found bool
		if st, found, v.err = t.tasks.Task(actx, k.task); found {
			v.tasks = map[string]swarm.TaskState{k.task: st}
		}
	} else {
		v.tasks, v.err = t.tasks.NodeTasks(actx, k.service, k.node)
	}
	close(v.done)
	return v
}

// failed tells whether v's list is done and failed.
func (v *view) failed() bool {
	select {
	case <-v.done:
		return v.err != nil
	default:
		return false
	}
}

// Issued records credentials issued to a task, in memory first, so that the
// Loop renews and revokes them even if the write to Vault failed, for as
// long as this manager leads.
func (t *Tracker) Issued(ctx context.Context, req provider.Request, c provider.Credentials) error {
	if t.store == nil {
		return nil
	}
	now := t.now()
	h := &tracked{Record: Record{TaskID: req.TaskID, Secret: req.SecretName, ServiceID: req.ServiceID, ServiceName: req.ServiceName, Credentials: c, Issued: now},
		verified: true, tokenUntil: now.Add(c.TokenTTL)}
	if c.LeaseID != "" {
		h.leaseUntil = now.Add(c.LeaseTTL)
	}
	r := h.record()
	if !t.add(h) {
		return fmt.Errorf("%w: task %s was issued credentials for it by a request this one crossed; swarm replaces it with a new task", provider.ErrRefetch, req.TaskID)
	}
	err := t.store.Put(ctx, r)
	if err == nil {
		t.mu.Lock()
		h.stored = true
		t.mu.Unlock()
	}
	switch {
	case errors.Is(err, ErrRecorded):
		// Another request for this task recorded its credentials first
		// (another manager served it too as leadership moved): these are
		// the request's to revoke, and the task's to fail (swarm
		// replaces it).
		t.remove(h)
		return fmt.Errorf("%w: task %s was issued credentials for it by a request this one crossed (STATE_PATH); swarm replaces it with a new task", provider.ErrRefetch, req.TaskID)
	case err != nil:
		// Held all the same: the Loop renews and revokes them while this
		// manager leads, and writes the record again at its rounds.
		t.mu.Lock()
		h.unrecorded = true
		t.mu.Unlock()
		return fmt.Errorf("%w; it is written again at the next round of the task lifecycle", err)
	}
	return nil
}

// unrecorded is what is held but not written to STATE_PATH yet.
func (t *Tracker) unrecorded() []*tracked {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*tracked
	for _, h := range t.byKey {
		if h.unrecorded {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b *tracked) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// record writes h to STATE_PATH again. A record there already is another
// request's credential for the same task and secret (a re-fetch served
// when neither the engine nor STATE_PATH could tell): which of the two the
// task holds, nobody can say, so both are renewed and revoked. The other
// is read from STATE_PATH at the next load; h stays in memory only.
func (t *Tracker) record(ctx context.Context, h *tracked) error {
	err := t.store.Put(ctx, h.record())
	if err != nil && !errors.Is(err, ErrRecorded) {
		return err
	}
	t.mu.Lock()
	h.unrecorded, h.stored = false, err == nil
	if err != nil && t.byKey[h.Key()] == h {
		delete(t.byKey, h.Key())
		t.dups[h] = true
	}
	t.mu.Unlock()
	if err != nil {
		t.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName}).
			Warn("the task was issued credentials for this secret twice (a repeated fetch that neither the engine nor STATE_PATH could tell): both are renewed and revoked, the second by this manager while it leads; it lives for its TTL after")
	}
	return nil
}

// written tells whether STATE_PATH holds h's record, so that it may be
// written again: h is what is held under its key (not a dup, not removed),
// and its first write is done, or it was read there.
func (t *Tracker) written(h *tracked) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[h.Key()] == h && h.stored && !h.unrecorded
}

// recorded tells whether h is what STATE_PATH holds for its task and
// secret (else a dup, kept in memory only).
func (t *Tracker) recorded(h *tracked) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.dups[h]
}

// add takes h in, numbered after everything held before, unless its task
// and secret are held already (ok false): one credential per record.
func (t *Tracker) add(h *tracked) (ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byKey[h.Key()]; ok {
		return false
	}
	t.seq++
	h.seq = t.seq
	t.byKey[h.Key()] = h
	return true
}

// load reads the records of STATE_PATH that are not held: those another
// leader wrote, before this term or during it (an old leader's request
// under way as leadership moved, or leadership gone and back between two
// rounds). One list a round, and one read per entry not held, at most
// workers at once (LIFECYCLE_CONCURRENCY), so that a new leader reads its
// records several at a time without a burst against Vault.
// bad reports the entries that are no records, once each. At the first
// failed read no more are started; what was read is held all the same.
//
// call runs each Vault call (the Loop gives each its own deadline).
func (t *Tracker) load(ctx context.Context, call func(context.Context, func(context.Context) error) error, workers int) (loaded int, bad []string, err error) {
	var names []string
	if err := call(ctx, func(ctx context.Context) (err error) { names, err = t.store.Names(ctx); return err }); err != nil {
		return 0, nil, err
	}
	var todo []string
	t.mu.Lock()
	for _, name := range names {
		if _, known := t.byKey[name]; known || t.skipped[name] {
			continue
		}
		todo = append(todo, name)
	}
	t.mu.Unlock()

	// Each read fills its own slot, so that what is read is taken in in
	// the list's order whatever order the reads end in.
	type read struct {
		r       Record
		found   bool
		notOurs bool
	}
	reads := make([]read, len(todo))
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, max(workers, 1))
		errMu    sync.Mutex
		firstErr error
	)
	failed := func() bool { errMu.Lock(); defer errMu.Unlock(); return firstErr != nil }
	for i, name := range todo {
		taskID, secret, ok := splitKey(name)
		if !ok {
			reads[i].notOurs = true
			continue
		}
		sem <- struct{}{}
		if failed() || ctx.Err() != nil {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var rd read
			err := call(ctx, func(ctx context.Context) (err error) {
				rd.r, rd.found, err = t.store.Get(ctx, taskID, secret)
				return err
			})
			switch {
			case errors.Is(err, errNotRecord):
				rd.notOurs = true
			case err != nil:
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				return
			}
			reads[i] = rd
		}()
	}
	wg.Wait()
	for i, rd := range reads {
		switch {
		case rd.notOurs:
			t.skip(todo[i])
			bad = append(bad, todo[i])
		case !rd.found:
			// Deleted since the list, or not read (a failed read).
		case t.add(t.loaded(rd.r)): // else issued here since the list
			loaded++
		}
	}
	if firstErr != nil {
		return loaded, bad, firstErr
	}
	t.mu.Lock()
	t.complete = true
	t.mu.Unlock()
	return loaded, bad, nil
}

// loaded is a record read from STATE_PATH, as held: its ends as the record
// says, but never later than a full TTL from now, since no renewal grants
// more (a writer whose clock ran ahead).
func (t *Tracker) loaded(r Record) *tracked {
	h := &tracked{Record: r, stored: true, tokenUntil: r.TokenUntil, leaseUntil: r.LeaseUntil}
	now := t.now()
	if limit := now.Add(r.TokenTTL); h.tokenUntil.After(limit) {
		h.tokenUntil = limit
	}
	if limit := now.Add(r.LeaseTTL); h.leaseUntil.After(limit) {
		h.leaseUntil = limit
	}
	return h
}

// skip leaves an entry of STATE_PATH alone for the rest of the process: it
// is not read again at each load.
func (t *Tracker) skip(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.skipped[name] = true
}

// Forget drops what is held in memory: another manager leads, and what it
// renews and revokes is read again from STATE_PATH if this one leads again.
// Credentials whose record could not be written stay: nobody else knows of
// them, and they are written at this manager's next round.
func (t *Tracker) Forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, h := range t.byKey {
		if !h.unrecorded {
			delete(t.byKey, k)
		}
	}
	clear(t.dups)
	t.complete = false
}

// remove drops h, if it is still what is held under its key.
func (t *Tracker) remove(h *tracked) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey[h.Key()] == h {
		delete(t.byKey, h.Key())
	}
	delete(t.dups, h)
}

// mark is the number of the last thing held: snapshot(mark()) is what is
// held now.
func (t *Tracker) mark() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// tasksHeld are the tasks of what was held up to mark upTo and still is,
// each once, in no order.
func (t *Tracker) tasksHeld(upTo uint64) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[string]bool, len(t.byKey))
	var ids []string
	add := func(h *tracked) {
		if h.seq <= upTo && !seen[h.TaskID] {
			seen[h.TaskID] = true
			ids = append(ids, h.TaskID)
		}
	}
	for _, h := range t.byKey {
		add(h)
	}
	for h := range t.dups {
		add(h)
	}
	return ids
}

// snapshot is what was held up to mark upTo and still is, in the order
// it came.
func (t *Tracker) snapshot(upTo uint64) []*tracked {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*tracked, 0, len(t.byKey)+len(t.dups))
	for _, h := range t.byKey {
		if h.seq <= upTo {
			out = append(out, h)
		}
	}
	for h := range t.dups {
		if h.seq <= upTo {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b *tracked) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// StaticRead tells whether the records of a vault.type=read secret's tasks
// show a value without a lease (a static read, which rotation compares by
// hash). False with any lease (credentials, which roll by their max TTL),
// and while no record of it is held: rotation then never reads a path
// that may issue credentials.
func (t *Tracker) StaticRead(secret string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	static := false
	for _, h := range t.byKey {
		if h.Secret != secret {
			continue
		}
		if h.LeaseID != "" {
			return false
		}
		static = true
	}
	return static
}

// Len is the number of task credentials held.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey) + len(t.dups)
}
