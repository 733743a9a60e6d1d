package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// DefaultInterval is LIFECYCLE_INTERVAL's default. It bounds how long a
// credential outlives its task, and each round costs one leadership check
// and one task list on the local engine, plus a Vault call per credential
// due for renewal (at half its TTL) or whose task ended: cheap enough to
// run often, and long enough that a lease of a minute or more is renewed
// in good time.
const DefaultInterval = 30 * time.Second

// workers bounds the Vault calls one round makes at once: a churn of
// hundreds of tasks is revoked in seconds without a burst against Vault.
const workers = 8

// Swarm is what the Loop asks the Docker engine; *swarm.Engine implements
// it. ForceUpdate rolls a service whose vault.rotate credentials end.
type Swarm interface {
	IsLeader(ctx context.Context) (bool, error)
	Tasks(ctx context.Context) (map[string]swarm.TaskState, error)
	Forcer
}

// Loop renews the credentials of running tasks and revokes those of ended
// ones, every Interval, on the manager that leads the swarm.
type Loop struct {
	tracker *Tracker
	swarm   Swarm
	vault   *api.Client
	log     logrus.FieldLogger
	// Interval is LIFECYCLE_INTERVAL.
	Interval time.Duration
	// Timeout bounds each Docker and Vault call.
	Timeout time.Duration

	checked, leading, loaded bool
	rollouts                 *rollouts
}

// NewLoop returns the leader loop over the tracker's records. vault carries
// the plugin's own token, which renews and revokes by accessor and lease ID.
func NewLoop(tracker *Tracker, sw Swarm, vault *api.Client, log logrus.FieldLogger) *Loop {
	return &Loop{tracker: tracker, swarm: sw, vault: vault, log: log, Interval: DefaultInterval, Timeout: 10 * time.Second,
		rollouts: newRollouts(sw, log)}
}

// Observe tells o of leadership and rollouts.
func (l *Loop) Observe(o Observer) { l.rollouts.observer = o }

// Run runs rounds until ctx ends. A failed round is one log line and is
// retried at the next: Vault or Docker being down delays the lifecycle, and
// the records stay in STATE_PATH.
func (l *Loop) Run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if l.vault.Token() == "" {
			// The first login is not done yet.
			wait = time.Second
			continue
		}
		wait = l.Interval
		if err := l.Round(ctx); err != nil && ctx.Err() == nil {
			l.log.Errorf("task lifecycle: %v", err)
		}
	}
}

// Round is one pass: on the leader, renew what is due and revoke what
// belongs to ended tasks.
func (l *Loop) Round(ctx context.Context) error {
	store := l.tracker.store
	if !l.checked {
		// Every manager checks its settings once, so that a missing grant
		// shows at start, not at the first failover.
		if err := l.call(ctx, store.Check); err != nil {
			return err
		}
		l.checked = true
	}
	var leader bool
	if err := l.call(ctx, func(ctx context.Context) (err error) { leader, err = l.swarm.IsLeader(ctx); return err }); err != nil {
		return err
	}
	if l.rollouts.observer != nil {
		l.rollouts.observer.Leading(leader)
	}
	if !leader {
		if l.leading {
			l.log.Info("task lifecycle: this manager no longer leads the swarm; the leader's plugin renews and revokes task credentials")
			l.tracker.forget()
		}
		l.leading = false
		return nil
	}
	if !l.leading {
		l.log.WithField("state_path", store.Path()).Info("task lifecycle: this manager leads the swarm; its plugin renews and revokes task credentials")
		l.leading, l.loaded = true, false
	}
	if !l.loaded {
		var records []Record
		var bad []string
		if err := l.call(ctx, func(ctx context.Context) (err error) { records, bad, err = store.List(ctx); return err }); err != nil {
			return err
		}
		if len(bad) > 0 {
			l.log.Warnf("task lifecycle: STATE_PATH=%s holds %d entries swarmvault did not write (e.g. %q): left alone; give the plugin a path of its own", store.Path(), len(bad), bad[0])
		}
		l.tracker.merge(records)
		l.loaded = true
		l.log.Infof("task lifecycle: %d task credentials found in STATE_PATH", len(records))
	}
	var tasks map[string]swarm.TaskState
	if err := l.call(ctx, func(ctx context.Context) (err error) { tasks, err = l.swarm.Tasks(ctx); return err }); err != nil {
		return err
	}
	err := l.reconcile(ctx, tasks)
	l.rollEnding(ctx, tasks)
	if o := l.rollouts.observer; o != nil {
		o.Tracked(l.tracker.Len())
	}
	return err
}

// reconcile renews or revokes each held credential, as its task's state says.
func (l *Loop) reconcile(ctx context.Context, tasks map[string]swarm.TaskState) error {
	var (
		mu       sync.Mutex
		failed   int
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, workers)
	)
	for _, h := range l.tracker.snapshot() {
		st, found := tasks[h.TaskID]
		ended := !found || st.Ended()
		if !ended && !l.renewDue(h) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			o := l.rollouts.observer
			if ended {
				why := "it is gone from the swarm"
				if found {
					why = "it is " + st.String()
				}
				err = l.revoke(ctx, h, why)
				if o != nil {
					o.Revocation(err == nil)
				}
			} else {
				err = l.renew(ctx, h)
				if o != nil {
					o.Renewal(err == nil)
				}
			}
			if err != nil {
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
	if failed > 0 {
		return fmt.Errorf("%d task credentials could not be renewed or revoked this round, and are tried again at the next (first: %v)", failed, firstErr)
	}
	return nil
}

// rollEnding rolls each service with a running task whose vault.rotate
// credentials end in sight (a max TTL, a lease Vault does not renew), so
// that its new tasks hold new credentials before the old ones end: one
// rollout per service, however many of its tasks are due. Other
// credentials were warned of when their end came in sight.
func (l *Loop) rollEnding(ctx context.Context, tasks map[string]swarm.TaskState) {
	type due struct {
		name, secret, task string
		end                time.Time
		held               []*held
	}
	services := map[string]*due{}
	var ids []string
	for _, h := range l.tracker.snapshot() {
		if h.rolled {
			continue
		}
		if st, ok := tasks[h.TaskID]; !ok || st.Ended() || st.Stopping() {
			// Revoked this round or the next, or being replaced: the
			// rollout that stops it may be settled before it has.
			continue
		}
		end, ok := h.ending(l.due)
		if !ok {
			continue
		}
		if !h.Rotate {
			// A capped token or lease was warned of as its renewal
			// found it; a lease Vault does not renew is warned of here.
			if h.LeaseID != "" && !h.LeaseRenewable && !h.leaseWarned {
				h.leaseWarned = true
				l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName}).
					Warnf("task lifecycle: the task's lease ends at %s and Vault does not renew it: docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", end.UTC().Format(time.RFC3339), h.ServiceName)
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
		d.held = append(d.held, h)
	}
	slices.Sort(ids)
	for _, id := range ids {
		d := services[id]
		why := fmt.Sprintf("the credentials of secret %s end at %s and cannot be renewed past it (task %s", d.secret, d.end.UTC().Format(time.RFC3339), d.task)
		if n := len(d.held); n > 1 {
			why += fmt.Sprintf(", and %d other tasks", n-1)
		}
		why += ")"
		var done bool
		l.call(ctx, func(ctx context.Context) error { done = l.rollouts.roll(ctx, id, d.name, why); return nil })
		if done {
			for _, h := range d.held {
				h.rolled = true
			}
		}
	}
}

// due tells whether credentials that expire at until, granted for ttl, are
// to be renewed now: at half their TTL, and always with two rounds to
// spare, so that one failed round does not let them expire.
func (l *Loop) due(until time.Time, ttl time.Duration) bool {
	return until.IsZero() || time.Until(until) <= max(ttl/2, 2*l.Interval)
}

func (l *Loop) renewDue(h *held) bool {
	return (!h.tokenCapped && l.due(h.tokenUntil, h.TokenTTL)) ||
		(h.LeaseID != "" && h.LeaseRenewable && !h.leaseCapped && l.due(h.leaseUntil, h.LeaseTTL))
}

// renew extends a running task's token, then its lease, by their granted
// TTLs. Vault caps both at their max TTL; then the credentials end there,
// which this loop reports once (rolling the service is vault.rotate's).
func (l *Loop) renew(ctx context.Context, h *held) error {
	entry := l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName})
	if !h.tokenCapped && l.due(h.tokenUntil, h.TokenTTL) {
		var s *api.Secret
		err := l.call(ctx, func(ctx context.Context) (err error) {
			s, err = l.vault.Auth().Token().RenewAccessorWithContext(ctx, h.Accessor, seconds(h.TokenTTL))
			return err
		})
		if gone(err) {
			entry.Warn("task lifecycle: the task's token no longer exists in Vault (it expired, or was revoked outside swarmvault): its credentials are gone, nothing left to renew")
			return l.forgetRecord(ctx, h)
		}
		if err != nil {
			return fmt.Errorf("cannot renew the token: %s", provider.ErrorText(err))
		}
		if s == nil || s.Auth == nil {
			return errors.New("Vault's answer to a token renewal has no auth")
		}
		extend(&h.tokenUntil, time.Duration(s.Auth.LeaseDuration)*time.Second, h.TokenTTL, &h.tokenCapped)
		if h.tokenCapped && !h.tokenWarned && !h.Rotate {
			h.tokenWarned = true
			entry.Warnf("task lifecycle: the task's token reaches its max TTL (TOKEN_MAX_TTL) at %s and cannot be renewed past it: docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", h.tokenUntil.UTC().Format(time.RFC3339), h.ServiceName)
		}
		entry.Debug("task lifecycle: token renewed")
	}
	if h.LeaseID != "" && h.LeaseRenewable && !h.leaseCapped && l.due(h.leaseUntil, h.LeaseTTL) {
		var s *api.Secret
		err := l.call(ctx, func(ctx context.Context) (err error) {
			s, err = l.vault.Sys().RenewWithContext(ctx, h.LeaseID, seconds(h.LeaseTTL))
			return err
		})
		if isStatus(err, http.StatusBadRequest) {
			// Not found or not renewable: it ends at its expiry, or ended.
			h.leaseCapped = true
			if !h.Rotate {
				entry.Warnf("task lifecycle: the task's lease can no longer be renewed (%s): docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", provider.ErrorText(err), h.ServiceName)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot renew the lease: %s", provider.ErrorText(err))
		}
		extend(&h.leaseUntil, time.Duration(s.LeaseDuration)*time.Second, h.LeaseTTL, &h.leaseCapped)
		if h.leaseCapped && !h.leaseWarned && !h.Rotate {
			h.leaseWarned = true
			entry.Warnf("task lifecycle: the task's lease reaches its max TTL at %s and cannot be renewed past it: docker service update --force %s gives the service's tasks new credentials (label vault.rotate=true does it in time)", h.leaseUntil.UTC().Format(time.RFC3339), h.ServiceName)
		}
		entry.Debug("task lifecycle: lease renewed")
	}
	return nil
}

// extend moves *until to the end a renewal granted. A renewal that granted
// less than asked and did not move the end means a max TTL: *capped stops
// further renewals. (Less than asked alone does not: Vault may cap a lease
// at its token's TTL, which the next token renewal raises.)
func extend(until *time.Time, got, asked time.Duration, capped *bool) {
	prev := *until
	*until = time.Now().Add(got)
	if got < asked && !prev.IsZero() && !until.After(prev.Add(time.Second)) {
		*capped = true
	}
}

// revoke ends the credentials of a task that ended. Revoking the token
// revokes its leases with it: Vault drops a dynamic secret's database user.
func (l *Loop) revoke(ctx context.Context, h *held, why string) error {
	err := l.call(ctx, func(ctx context.Context) error {
		return l.vault.Auth().Token().RevokeAccessorWithContext(ctx, h.Accessor)
	})
	if err != nil && !gone(err) {
		return fmt.Errorf("cannot revoke the token: %s", provider.ErrorText(err))
	}
	if err := l.forgetRecord(ctx, h); err != nil {
		return err
	}
	l.log.WithFields(logrus.Fields{"task_id": h.TaskID, "secret": h.Secret, "service": h.ServiceName}).
		Infof("task lifecycle: task ended (%s): its credentials are revoked", why)
	return nil
}

// forgetRecord deletes a record from STATE_PATH, then from memory: a failed
// delete is tried again at the next round.
func (l *Loop) forgetRecord(ctx context.Context, h *held) error {
	if err := l.call(ctx, func(ctx context.Context) error { return l.tracker.store.Delete(ctx, h.TaskID, h.Secret) }); err != nil {
		return err
	}
	l.tracker.remove(h.Key())
	return nil
}

// call runs one Docker or Vault call with its own deadline.
func (l *Loop) call(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	return f(ctx)
}

// gone tells a token Vault no longer has (expired, revoked) from a failed
// call: renew-accessor and revoke-accessor answer 400 for an unknown
// accessor.
func gone(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, e := range re.Errors {
		if strings.Contains(e, "invalid accessor") || strings.Contains(e, "not found") {
			return true
		}
	}
	return false
}

func seconds(d time.Duration) int { return int(d / time.Second) }
