// Package lifecycle gives a task's credentials the task's life: the leader's
// plugin renews them while the task runs and revokes them when it ends.
//
// The engine calls the plugin only when a task is assigned, so the plugin
// learns the rest from the Docker API of its own manager (package swarm). It
// records what it issued — token accessors and lease IDs, never a token or
// value — in Vault under STATE_PATH, so that whichever manager leads next can
// carry on. The request path tells it what it issued through
// provider.Tracker; the Loop does the rest, on the leader only.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// TaskSource tells one task's state; *swarm.Engine implements it.
type TaskSource interface {
	Task(ctx context.Context, id string) (state swarm.TaskState, found bool, err error)
}

// Tracker implements provider.Tracker: it refuses repeated fetches and
// records issued credentials, in Vault and in memory for the Loop.
type Tracker struct {
	tasks TaskSource
	store *Store
	log   logrus.FieldLogger
	now   func() time.Time

	mu   sync.Mutex
	held map[string]*held
	// complete: held has every record of STATE_PATH (the Loop loaded them
	// in this leadership term), so Admit need not ask Vault.
	complete bool
	// fresh holds, for admitFresh, the tasks the engine said had not
	// started, and until when that answer stands.
	fresh map[string]time.Time
}

// admitFresh is how long the engine's "not started" for a task stands:
// the engine asks for a task's secrets one after the other, within
// milliseconds, so a task with k secrets costs one Docker call, not k. A
// re-fetch comes at a node's reconnect or a new leader, later than this;
// one within it finds a task that has not started either, and credentials
// are still refused by their record.
const admitFresh = 2 * time.Second

// maxFresh bounds fresh; expired answers are dropped when it fills.
const maxFresh = 4096

// held is a record with what the leader learnt of it since: when its token
// and lease expire, as of their last renewal.
type held struct {
	Record
	// tokenUntil and leaseUntil are zero when unknown (a record another
	// leader wrote): the next round renews, and learns them.
	tokenUntil, leaseUntil time.Time
	// capped: a renewal no longer moves the end (a max TTL), so renewing
	// again would change nothing; warned: that end was logged.
	tokenCapped, leaseCapped bool
	tokenWarned, leaseWarned bool
	// rolled: the task's service was rolled for these credentials
	// (vault.rotate), so that its other rounds do not roll it again.
	rolled bool
}

// ending tells when the credentials end for good, if that is in sight: a
// token or lease that renewals no longer extend, or a lease Vault does not
// renew, within the margin the Loop renews in.
func (h *held) ending(margin func(until time.Time, ttl time.Duration) bool) (end time.Time, ok bool) {
	take := func(t time.Time) {
		if t.IsZero() {
			t = time.Now() // a lease Vault no longer knows
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
	if h.LeaseID != "" && !h.LeaseRenewable {
		until := h.leaseUntil
		if until.IsZero() {
			until = h.Issued.Add(h.LeaseTTL) // another leader's record
		}
		if margin(until, h.LeaseTTL) {
			take(until)
		}
	}
	return end, ok
}

// NewTracker returns a Tracker. Without a store (STATE_PATH unset) it only
// refuses repeated fetches for tasks that have started.
func NewTracker(tasks TaskSource, store *Store, log logrus.FieldLogger) *Tracker {
	return &Tracker{tasks: tasks, store: store, log: log, now: time.Now, held: map[string]*held{}, fresh: map[string]time.Time{}}
}

// Admit refuses a request for a task that holds the secret already: one
// its node has acknowledged (the dispatcher fetches a task's secrets before
// its node sees it), or, for credentials, one STATE_PATH has a record of.
// The latter is a task whose first value was lost with its leader: refused,
// it fails and swarm replaces it with a new task, which gets a clean fetch.
// When the Docker engine or Vault cannot tell, the request is served as a
// first fetch: a credential too many is better than a task that cannot
// start.
func (t *Tracker) Admit(ctx context.Context, req provider.Request, credentials bool) error {
	if !t.isFresh(req.TaskID) {
		st, found, err := t.tasks.Task(ctx, req.TaskID)
		switch {
		case err != nil:
			t.log.WithField("task_id", req.TaskID).Warnf("cannot tell whether the task holds its secrets already, so serving it as a first fetch: %v", err)
		case found && st.Delivered():
			return fmt.Errorf("%w: task %s is %s, so it holds this secret from an earlier fetch (its node reconnected, or a new leader sent it again)", provider.ErrRefetch, req.TaskID, st.State)
		default:
			t.setFresh(req.TaskID)
		}
	}
	if !credentials || t.store == nil {
		return nil
	}
	t.mu.Lock()
	_, mine := t.held[key(req.TaskID, req.SecretName)]
	complete := t.complete
	t.mu.Unlock()
	if !mine && !complete {
		// Before the Loop has read STATE_PATH (a new leader's first
		// interval), another leader's records are only in Vault.
		var err error
		if _, mine, err = t.store.Get(ctx, req.TaskID, req.SecretName); err != nil {
			t.log.WithField("task_id", req.TaskID).Warnf("cannot tell whether the task was issued credentials already, so serving it as a first fetch: %v", err)
			return nil
		}
	}
	if mine {
		return fmt.Errorf("%w: task %s was issued credentials for it before (STATE_PATH) and has not started; swarm replaces it with a new task", provider.ErrRefetch, req.TaskID)
	}
	return nil
}

func (t *Tracker) isFresh(taskID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	until, ok := t.fresh[taskID]
	return ok && t.now().Before(until)
}

func (t *Tracker) setFresh(taskID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.fresh) >= maxFresh {
		for id, until := range t.fresh {
			if !now.Before(until) {
				delete(t.fresh, id)
			}
		}
		if len(t.fresh) >= maxFresh {
			clear(t.fresh) // a burst: the next asks cost a Docker call again
		}
	}
	t.fresh[taskID] = now.Add(admitFresh)
}

// Issued records credentials issued to a task, in memory first, so that the
// Loop renews and revokes them even if the write to Vault failed, for as
// long as this manager leads.
func (t *Tracker) Issued(ctx context.Context, req provider.Request, c provider.Credentials) error {
	if t.store == nil {
		return nil
	}
	now := t.now()
	r := Record{TaskID: req.TaskID, Secret: req.SecretName, ServiceID: req.ServiceID, ServiceName: req.ServiceName, Credentials: c, Issued: now}
	h := &held{Record: r, tokenUntil: now.Add(c.TokenTTL)}
	if c.LeaseID != "" {
		h.leaseUntil = now.Add(c.LeaseTTL)
	}
	t.mu.Lock()
	t.held[r.Key()] = h
	t.mu.Unlock()
	return t.store.Put(ctx, r)
}

// merge adds records read from STATE_PATH that this process does not hold;
// held is then complete.
func (t *Tracker) merge(records []Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range records {
		if _, ok := t.held[r.Key()]; !ok {
			t.held[r.Key()] = &held{Record: r}
		}
	}
	t.complete = true
}

// forget drops what is held in memory: another manager leads, and what it
// renews and revokes is read again from STATE_PATH if this one leads again.
func (t *Tracker) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.held)
	t.complete = false
}

func (t *Tracker) remove(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.held, k)
}

func (t *Tracker) snapshot() []*held {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*held, 0, len(t.held))
	for _, h := range t.held {
		out = append(out, h)
	}
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
	for _, h := range t.held {
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
	return len(t.held)
}
