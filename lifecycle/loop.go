package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/swarm"
)

// DefaultInterval is LIFECYCLE_INTERVAL's default. It bounds how long a
// credential outlives its task, and each round costs one task list on the
// local engine and one list of STATE_PATH, plus a Vault call per
// credential due for renewal (at half its TTL) or whose task ended: cheap
// enough to run often, and long enough that a lease of a minute or more is
// renewed in good time.
const DefaultInterval = 30 * time.Second

// DefaultWorkers is LIFECYCLE_CONCURRENCY's default: it bounds the Vault
// calls one round makes at once, so that a churn of hundreds of tasks is
// revoked in seconds, and a new leader's records are read several at a
// time, without a burst against Vault.
const DefaultWorkers = 8

// DefaultRotateAt is ROTATE_AT's default: a certificate's service is
// rolled once about two thirds of its lifetime have passed, leaving a
// third for a rollout that has to wait (an update under way, a leader
// change).
const DefaultRotateAt = 0.67

// TaskLister lists the swarm's tasks; *swarm.Engine implements it.
type TaskLister interface {
	// Tasks is the state of every task swarm wants running, and of each
	// of held it keeps in another state; a held task absent from it is
	// gone from the swarm.
	Tasks(ctx context.Context, held []string) (map[string]swarm.TaskState, error)
}

// Loop renews the credentials of running tasks and revokes those of ended
// ones, every Interval, for as long as a term of this manager's lead
// lasts (Watcher).
type Loop struct {
	tracker  *Tracker
	tasks    TaskLister
	vault    Credentials
	rollouts *Rollouts
	log      logrus.FieldLogger
	now      func() time.Time
	// Interval is LIFECYCLE_INTERVAL; Timeout bounds each Docker and Vault
	// call; Workers (LIFECYCLE_CONCURRENCY) bounds the Vault calls made at
	// once.
	Interval, Timeout time.Duration
	Workers           int
	// RotateAt is ROTATE_AT: the share of a certificate's lifetime after
	// which the leader rolls its vault.rotate service (or warns).
	RotateAt float64
	// Ready, when set, tells whether the plugin has a Vault token yet: no
	// round runs before.
	Ready func() bool
	// Observer, when set, is told of renewals, revocations and the
	// credentials tracked.
	Observer Observer
}

// NewLoop returns the leader loop over the tracker's records; vault renews
// and revokes with the plugin's own token, and rollouts rolls the services
// whose vault.rotate credentials end.
func NewLoop(tracker *Tracker, tasks TaskLister, vault Credentials, rollouts *Rollouts, log logrus.FieldLogger) *Loop {
	return &Loop{tracker: tracker, tasks: tasks, vault: vault, rollouts: rollouts, log: log.WithField("component", "lifecycle"), now: time.Now,
		Interval: DefaultInterval, Timeout: 10 * time.Second, Workers: DefaultWorkers, RotateAt: DefaultRotateAt}
}

// Run runs rounds, the first at once, until ctx (the term's) ends. A failed
// round is one log line and is retried at the next: Vault or Docker being
// down delays the lifecycle, and the records stay in STATE_PATH.
func (l *Loop) Run(ctx context.Context) { runRounds(ctx, l.Interval, l.Ready, l.Round, l.log) }

// runRounds runs round at once and then every interval, until ctx (a
// term's) ends; the Rotator's rounds run the same way. A failed round is
// one log line, and the next round tries again. ready, when set, is asked
// before each round: while it says no (the first login is not done), the
// round waits a second and asks again.
func runRounds(ctx context.Context, interval time.Duration, ready func() bool, round func(context.Context) error, log logrus.FieldLogger) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if ready != nil && !ready() {
			wait = time.Second // the first login is not done yet
			continue
		}
		wait = interval
		if err := round(ctx); err != nil && ctx.Err() == nil {
			log.Error(err)
		}
	}
}

// CheckStore checks, on every manager, that the plugin's token may keep
// records under STATE_PATH, so that a missing grant shows at start and not
// at the first failover. It asks until the answer is yes, every Interval,
// and logs each different answer once: one line for a missing grant, not
// one a round. Rounds do not wait for it.
func (l *Loop) CheckStore(ctx context.Context) {
	said := ""
	for {
		wait := time.Second // the first login is not done yet
		if l.Ready == nil || l.Ready() {
			wait = l.Interval
			err := l.withDeadline(ctx, l.tracker.store.Check)
			if err == nil {
				if said != "" {
					l.log.Info("the plugin's token may now keep records under STATE_PATH")
				}
				return
			}
			if msg := err.Error(); msg != said && ctx.Err() == nil {
				l.log.Error(msg)
				said = msg
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Round is one pass, on the leader: write the records whose write failed,
// read the records other leaders wrote, then list the swarm's tasks, then renew what is due and revoke what
// belongs to ended tasks. It acts only on what was held before the list:
// a task created after Docker built it is absent from it, and its
// credentials would be taken for those of a task gone from the swarm.
func (l *Loop) Round(ctx context.Context) error {
	start := l.now()
	var errs []error
	// First what this manager could not write: a record found there then
	// is another credential of the task's, read by the load that follows.
	for _, h := range l.tracker.unrecorded() {
		if err := l.withDeadline(ctx, func(ctx context.Context) error { return l.tracker.record(ctx, h) }); err != nil {
			errs = append(errs, fmt.Errorf("task %s, secret %s: its record is still not written: %w", h.TaskID, h.Secret, err))
			break
		}
	}
	loaded, bad, err := l.tracker.load(ctx, l.withDeadline, l.Workers)
	if len(bad) > 0 {
		l.log.Warnf("STATE_PATH=%s holds %d entries swarmvault did not write (e.g. %q): left alone; give the plugin a path of its own", l.tracker.store.Path(), len(bad), bad[0])
	}
	if err != nil {
		// What is held is still renewed and revoked.
		errs = append(errs, err)
	}
	upTo := l.tracker.mark()
	held := l.tracker.tasksHeld(upTo)
	var tasks map[string]swarm.TaskState
	if err := l.withDeadline(ctx, func(ctx context.Context) (err error) { tasks, err = l.tasks.Tasks(ctx, held); return err }); err != nil {
		// Without the task list nothing is revoked, but what is due is
		// renewed all the same: a running task keeps its credentials
		// while the engine does not answer.
		errs = append(errs, err)
		tasks = nil
	}
	snap := l.tracker.snapshot(upTo)
	done, err := l.reconcile(ctx, snap, tasks)
	if err != nil {
		errs = append(errs, err)
	}
	if tasks != nil {
		l.rollEnding(ctx, snap, tasks)
	}
	took := l.now().Sub(start).Round(time.Millisecond)
	if loaded > 0 {
		// Records another leader wrote (a new leader's first round, or a
		// request under way as leadership moved): each is read once, and
		// only what is due is asked of Vault.
		l.log.Infof("%d task credentials found in STATE_PATH; the round took %s: %s, the others are renewed when due", loaded, took, done)
	} else {
		l.log.Debugf("round of %d task credentials took %s: %s", len(snap), took, done)
	}
	if l.Observer != nil {
		l.Observer.Tracked(l.tracker.Len())
	}
	return errors.Join(errs...)
}

// reconcile renews or revokes each held credential, as its task's state
// says; with no task list (nil), it renews only. A record read from
// STATE_PATH is looked up in Vault (verify) only once it is to be acted
// on: its task ended, its credentials are due, or their end is in sight.
func (l *Loop) reconcile(ctx context.Context, all []*tracked, tasks map[string]swarm.TaskState) (*pass, error) {
	var (
		mu       sync.Mutex
		failed   int
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, max(l.Workers, 1))
	)
	// A Vault that hangs rather than refuses would take Timeout per call:
	// after as many timeouts in a row as calls run at once, the round
	// stops starting calls, and the next starts over.
	var timeouts atomic.Int32
	workers := int32(max(l.Workers, 1))
	stopped := false
	// A Vault that answers it serves no one (sealed, no active node) would
	// refuse every call: the round stops at the first such answer. A rate
	// limit quota, which may cover one path, stops the calls of its kind.
	p := &pass{}
	started, due := 0, 0
	for _, h := range all {
		st, found := tasks[h.TaskID]
		ended := tasks != nil && (!found || st.Ended())
		if !ended && !l.renewDue(h) && (h.verified || !l.endInSight(h)) {
			continue
		}
		due++
		if stopped {
			continue
		}
		sem <- struct{}{}
		if timeouts.Load() >= workers || p.everyone() != nil {
			<-sem
			stopped = true
			continue
		}
		started++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := l.settle(ctx, p, h, ended, found, st)
			if errors.As(err, new(timedOut)) {
				timeouts.Add(1)
			} else {
				timeouts.Store(0)
			}
			if err != nil && !errors.As(err, new(*notServing)) {
				mu.Lock()
				failed++
				if firstErr == nil {
					firstErr = fmt.Errorf("task %s, secret %s: %w", h.TaskID, h.Secret, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var errs []error
	if ns := p.everyone(); ns != nil {
		errs = append(errs, fmt.Errorf("%s, so the round stopped after %d of the %d task credentials due, and the next one tries again: %s", ns.what, started, due, ns.fix))
	}
	errs = append(errs, p.byKind()...)
	switch {
	case stopped && len(errs) == 0:
		errs = append(errs, fmt.Errorf("Vault did not answer %d calls in a row within VAULT_CLIENT_TIMEOUT, so the round stopped; the next one tries again (first: %v)", workers, firstErr))
	case failed > 0:
		errs = append(errs, fmt.Errorf("%d task credentials could not be renewed or revoked this round, and are tried again at the next (first: %v)", failed, firstErr))
	}
	if n := p.unwritten.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d renewed task credentials could not be written to STATE_PATH again, so a new leader would look them up in Vault (first: %v)", n, p.firstUnwritten()))
	}
	return p, errors.Join(errs...)
}

// endInSight tells whether h's credentials end in sight (rollEnding's
// test): a record read from STATE_PATH is verified then, though nothing is
// due, so that its service is rolled in time.
func (l *Loop) endInSight(h *tracked) bool {
	_, ok := h.ending(l.now(), l.due, l.RotateAt)
	return ok
}

// pass is one round's reconcile: what Vault refused during it, and what it
// did.
type pass struct {
	refusals
	lookedUp, renewed, revoked atomic.Int32
	// unwritten counts the renewals whose record was not written again.
	unwritten atomic.Int32
	errMu     sync.Mutex
	unwritErr error
}

func (p *pass) String() string {
	return fmt.Sprintf("%d tokens looked up in Vault, %d renewed, %d revoked", p.lookedUp.Load(), p.renewed.Load(), p.revoked.Load())
}

func (p *pass) notWritten(err error) {
	p.unwritten.Add(1)
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.unwritErr == nil {
		p.unwritErr = err
	}
}

func (p *pass) firstUnwritten() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.unwritErr
}

// refusals are one round's answers from Vault that it serves no one
// (sealed, no active node) or no call of a kind (a rate limit quota on its
// path): after one, the round makes no more such calls, and they fail at
// once with the same answer.
type refusals struct {
	mu    sync.Mutex
	all   *notServing
	kinds map[string]*notServing
	order []string
	// left counts the calls of each kind not made.
	left map[string]int
}

// call makes one Vault call of a kind (what it does, for the log: "lease
// renewals"), unless Vault refused the pass's calls of that kind, or all.
func (l *Loop) call(ctx context.Context, p *pass, kind string, f func(context.Context) error) error {
	r := &p.refusals
	r.mu.Lock()
	ns := r.all
	if ns == nil {
		ns = r.kinds[kind]
	}
	if ns != nil {
		if r.left == nil {
			r.left = map[string]int{}
		}
		r.left[kind]++
		r.mu.Unlock()
		return ns
	}
	r.mu.Unlock()
	err := l.withDeadline(ctx, f)
	if got := new(notServing); errors.As(err, &got) {
		r.mu.Lock()
		if got.everyone {
			if r.all == nil {
				r.all = got
			}
		} else if r.kinds[kind] == nil {
			if r.kinds == nil {
				r.kinds = map[string]*notServing{}
			}
			r.kinds[kind] = got
			r.order = append(r.order, kind)
		}
		r.mu.Unlock()
	}
	return err
}

func (r *refusals) everyone() *notServing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all
}

// byKind says, for each kind of call Vault refused this round, that the
// round made no more of them.
func (r *refusals) byKind() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, kind := range r.order {
		ns := r.kinds[kind]
		errs = append(errs, fmt.Errorf("%s, so this round made no more %s (%d left for the next round): %s", ns.what, kind, r.left[kind], ns.fix))
	}
	return errs
}

// settle does what one credential's task state asks: verify a record read
// from STATE_PATH, then revoke it (ended) or renew it (due); then write
// its record again if its ends moved.
func (l *Loop) settle(ctx context.Context, p *pass, h *tracked, ended, found bool, st swarm.TaskState) error {
	if !h.verified {
		ok, err := l.verify(ctx, p, h)
		switch {
		case errors.Is(err, ErrLookupDenied) && !ended:
			// A plugin upgraded without the grant: renewing a record it
			// cannot check extends at most a token's life, which
			// revoking it could end for another task. So it renews,
			// never revokes, and says what to grant.
			if rerr := l.renew(ctx, p, h); errors.Is(rerr, errForgotten) {
				return nil
			} else if rerr != nil {
				return rerr
			}
			l.rewrite(ctx, p, h)
			return err
		case err != nil || !ok:
			return err
		}
	}
	if ended {
		why := "it is gone from the swarm"
		if found {
			why = "it is " + st.String()
		}
		err := l.revoke(ctx, p, h, why)
		if err == nil {
			p.revoked.Add(1)
		}
		if l.Observer != nil {
			l.Observer.Revocation(err == nil)
		}
		return err
	}
	if l.renewDue(h) {
		err := l.renew(ctx, p, h)
		if errors.Is(err, errForgotten) {
			return nil
		}
		if err == nil {
			p.renewed.Add(1)
		}
		if l.Observer != nil {
			l.Observer.Renewal(err == nil)
		}
		if err != nil {
			return err
		}
	}
	l.rewrite(ctx, p, h)
	return nil
}

// rewrite writes h's record again if its ends moved (a renewal, or a
// lookup that learnt them), so that a new leader knows what is due without
// asking Vault. A failed write costs only that: the next leader looks the
// token up when the record says it is due.
func (l *Loop) rewrite(ctx context.Context, p *pass, h *tracked) {
	if !h.moved || !l.tracker.written(h) {
		return
	}
	if err := l.withDeadline(ctx, func(ctx context.Context) error { return l.tracker.store.Update(ctx, h.record()) }); err != nil {
		p.notWritten(fmt.Errorf("task %s, secret %s: %w", h.TaskID, h.Secret, err))
		return
	}
	h.moved = false
}

// verify checks a record read from STATE_PATH before the plugin renews or
// revokes by its accessor: the token's metadata must name the record's
// task, so that a forged or stale entry cannot make the plugin revoke
// another task's token, or keep one alive. It also learns how long the
// token has left, so that a new leader renews only what is due. ok is
// false when the record is not to be acted on.
func (l *Loop) verify(ctx context.Context, p *pass, h *tracked) (ok bool, err error) {
	var info TokenInfo
	err = l.call(ctx, p, "token lookups", func(ctx context.Context) (err error) { info, err = l.vault.LookupToken(ctx, h.Accessor); return err })
	if err == nil {
		p.lookedUp.Add(1)
	}
	entry := l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName})
	switch {
	case errors.Is(err, ErrTokenGone):
		entry.Info("the task's token no longer exists in Vault (it expired, or was revoked): its record is removed")
		return false, l.forgetRecord(ctx, h, true)
	case err != nil:
		return false, err
	case info.TaskID != h.TaskID:
		entry.Warnf("STATE_PATH=%s entry %s names a token that is not this task's: left alone, neither renewed nor revoked; remove the entry if swarmvault did not write it", l.tracker.store.Path(), h.Key())
		l.tracker.skip(h.Key())
		l.tracker.remove(h)
		return false, nil
	}
	h.verified = true
	h.tokenUntil, h.moved = l.now().Add(info.TTL), true
	return true, nil
}

// rollEnding rolls each service with a running task whose vault.rotate
// credentials end in sight (a max TTL, a lease Vault does not renew), so
// that its new tasks hold new credentials before the old ones end: one
// rollout per service, however many of its tasks are due. Other
// credentials were warned of when their end came in sight.
func (l *Loop) rollEnding(ctx context.Context, all []*tracked, tasks map[string]swarm.TaskState) {
	type due struct {
		name, secret, task string
		end                time.Time
		creds              []*tracked
	}
	services := map[string]*due{}
	var ids []string
	now := l.now()
	for _, h := range all {
		if h.rolled || !h.verified {
			continue
		}
		if st, ok := tasks[h.TaskID]; !ok || st.Ended() || st.Stopping() {
			// Revoked this round or the next, or being replaced: the
			// rollout that stops it may be settled before it has.
			continue
		}
		end, ok := h.ending(now, l.due, l.RotateAt)
		if !ok {
			continue
		}
		if !h.Rotate {
			// A capped token or lease was warned of as its renewal
			// found it; a lease Vault does not renew is warned of here.
			entry := l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName})
			switch {
			case h.LeaseID != "" && !h.LeaseRenewable && !h.leaseWarned:
				h.leaseWarned = true
				entry.Warnf("the task's lease ends at %s and Vault does not renew it: docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", end.UTC().Format(time.RFC3339), h.ServiceName)
			case !h.Expires.IsZero() && !h.expiryWarned && !end.Before(h.Expires):
				h.expiryWarned = true
				entry.Warnf("the task's certificate expires at %s and cannot be renewed: docker service update --force %s gives the service's tasks new ones (label vault.rotate=true does it in time)", h.Expires.UTC().Format(time.RFC3339), h.ServiceName)
			}
			continue
		}
		d := services[h.ServiceID]
		if d == nil {
			d = &due{name: h.ServiceName}
			services[h.ServiceID] = d
			ids = append(ids, h.ServiceID)
		}
		if d.end.IsZero() || end.Before(d.end) {
			d.end, d.secret, d.task = end, h.Secret, h.TaskID
		}
		d.creds = append(d.creds, h)
	}
	slices.Sort(ids)
	for _, id := range ids {
		d := services[id]
		why := fmt.Sprintf("the credentials of secret %s end at %s and cannot be renewed past it (task %s", d.secret, d.end.UTC().Format(time.RFC3339), d.task)
		if n := len(d.creds); n > 1 {
			why += fmt.Sprintf(", and %d other tasks", n-1)
		}
		why += ")"
		var done bool
		l.withDeadline(ctx, func(ctx context.Context) error { done = l.rollouts.roll(ctx, id, d.name, why); return nil })
		if done {
			for _, h := range d.creds {
				h.rolled = true
			}
		}
	}
}

// due tells whether credentials that expire at until, granted for ttl, are
// to be renewed now: at half their TTL, and always with two rounds to
// spare, so that one failed round does not let them expire.
func (l *Loop) due(until time.Time, ttl time.Duration) bool {
	return until.IsZero() || until.Sub(l.now()) <= max(ttl/2, 2*l.Interval)
}

func (l *Loop) renewDue(h *tracked) bool {
	return l.tokenDue(h) || l.leaseDue(h)
}

func (l *Loop) tokenDue(h *tracked) bool { return !h.tokenCapped && l.due(h.tokenUntil, h.TokenTTL) }

func (l *Loop) leaseDue(h *tracked) bool {
	return h.LeaseID != "" && h.LeaseRenewable && !h.leaseCapped && l.due(h.leaseUntil, h.LeaseTTL)
}

// renew extends a running task's token, then its lease, by their granted
// TTLs. Vault caps both at their max TTL; then the credentials end there,
// which this loop reports once (rolling the service is vault.rotate's).
func (l *Loop) renew(ctx context.Context, p *pass, h *tracked) error {
	entry := l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName})
	if l.tokenDue(h) {
		var got time.Duration
		err := l.call(ctx, p, "token renewals", func(ctx context.Context) (err error) {
			got, err = l.vault.RenewToken(ctx, h.Accessor, h.TokenTTL)
			return err
		})
		if errors.Is(err, ErrTokenGone) {
			entry.Warn("the task's token no longer exists in Vault (it expired, or was revoked outside swarmvault): its credentials are gone, nothing left to renew")
			if err := l.forgetRecord(ctx, h, true); err != nil {
				return err
			}
			return errForgotten
		}
		if err != nil {
			return err
		}
		l.afterRenewal(entry, h, "token", "its max TTL (TOKEN_MAX_TTL)", &h.tokenUntil, got, h.TokenTTL, &h.tokenCapped, &h.tokenWarned)
	}
	if l.leaseDue(h) {
		var got time.Duration
		err := l.call(ctx, p, "lease renewals", func(ctx context.Context) (err error) {
			got, err = l.vault.RenewLease(ctx, h.LeaseID, h.LeaseTTL)
			return err
		})
		h.leaseFailing = err != nil && !errors.Is(err, ErrLeaseNotRenewable)
		if errors.Is(err, ErrLeaseNotRenewable) {
			// Not found or not renewable: it ends at its expiry, or ended.
			h.leaseCapped = true
			if !h.Rotate {
				entry.Warnf("the task's lease can no longer be renewed (%v): docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", errors.Unwrap(err), h.ServiceName)
			}
			return nil
		}
		if err != nil {
			return err
		}
		l.afterRenewal(entry, h, "lease", "its max TTL", &h.leaseUntil, got, h.LeaseTTL, &h.leaseCapped, &h.leaseWarned)
	}
	return nil
}

// errForgotten is renew's answer for credentials whose token Vault no
// longer has: their record is deleted, and nothing is renewed or written.
var errForgotten = errors.New("the task's token no longer exists in Vault: its record is removed")

// afterRenewal takes in a renewal of h's token or lease (what) that granted
// got: its new end, and, once, a warning when that end is a max TTL (limit)
// that no renewal moves, unless vault.rotate rolls the service in time.
func (l *Loop) afterRenewal(entry logrus.FieldLogger, h *tracked, what, limit string, until *time.Time, got, asked time.Duration, capped, warned *bool) {
	l.extend(until, got, asked, capped)
	h.moved = true
	if *capped && !*warned && !h.Rotate {
		*warned = true
		entry.Warnf("the task's %s reaches %s at %s and cannot be renewed past it: docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", what, limit, until.UTC().Format(time.RFC3339), h.ServiceName)
	}
	entry.Debug(what + " renewed")
}

// extend moves *until to the end a renewal granted. A renewal that granted
// less than asked and did not move the end means a max TTL: *capped stops
// further renewals. (Less than asked alone does not: Vault may cap a lease
// at its token's TTL, which the next token renewal raises.)
func (l *Loop) extend(until *time.Time, got, asked time.Duration, capped *bool) {
	prev := *until
	*until = l.now().Add(got)
	if got < asked && !prev.IsZero() && !until.After(prev.Add(time.Second)) {
		*capped = true
	}
}

// revoke ends the credentials of a task that ended. Revoking the token
// revokes its leases with it: Vault drops a dynamic secret's database user.
func (l *Loop) revoke(ctx context.Context, p *pass, h *tracked, why string) error {
	err := l.call(ctx, p, "token revocations", func(ctx context.Context) error { return l.vault.RevokeToken(ctx, h.Accessor) })
	gone := errors.Is(err, ErrTokenGone)
	if err != nil && !gone {
		return err
	}
	if err := l.forgetRecord(ctx, h, gone); err != nil {
		return err
	}
	l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName}).
		Infof("task ended (%s): its credentials are revoked", why)
	return nil
}

// forgetRecord deletes a record from STATE_PATH, then from memory: a failed
// delete is tried again at the next round. A credential held in memory
// only (a dup) leaves STATE_PATH alone: what is there is the other one.
// gone: its token was gone already, maybe revoked by another manager that
// deleted the record too, after which another request may have recorded a
// credential of its own there: the entry is deleted only if it is still
// this one.
func (l *Loop) forgetRecord(ctx context.Context, h *tracked, gone bool) error {
	if l.tracker.recorded(h) {
		err := l.withDeadline(ctx, func(ctx context.Context) error {
			if gone {
				r, found, err := l.tracker.store.Get(ctx, h.TaskID, h.Secret)
				if err != nil || !found || r.Accessor != h.Accessor {
					return err
				}
			}
			return l.tracker.store.Delete(ctx, h.TaskID, h.Secret)
		})
		if err != nil {
			return err
		}
	}
	l.tracker.remove(h)
	return nil
}

// withDeadline runs one Docker or Vault call with its own deadline. An error of a
// call that ran out of it is a timedOut.
func (l *Loop) withDeadline(ctx context.Context, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	err := f(cctx)
	if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return timedOut{err}
	}
	return err
}

// timedOut is the error of a call that ran out of its deadline.
type timedOut struct{ error }

func (t timedOut) Unwrap() error { return t.error }
