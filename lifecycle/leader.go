package lifecycle

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Leadership tells whether this manager leads the swarm; *swarm.Engine
// implements it.
type Leadership interface {
	IsLeader(ctx context.Context) (bool, error)
}

// A Term is what runs while this manager leads: the Loop and the Rotator.
// Run returns when ctx, the term's, ends.
type Term interface {
	Run(ctx context.Context)
}

// DefaultLeaderPoll is how often the Watcher asks the engine whether this
// manager leads: a new leader starts renewing within it, an old one stops.
// Two local Docker calls (info, node inspect) a poll.
const DefaultLeaderPoll = 5 * time.Second

// Watcher is the leader side's one leadership watcher, as Nomad's
// monitorLeadership and swarmkit's becomeLeader/becomeFollower: when this
// manager starts to lead it starts a term, running every Term with a
// context of the term's own; when it stops leading, the term's context is
// cancelled and the Watcher waits for every Term to return before it asks
// again. So no two terms of one process overlap, and nothing of a term
// acts after the Watcher has seen it end.
//
// swarmvault learns leadership by polling the Docker API, so two managers
// may both think they lead for up to a poll: everything a term does is
// idempotent (a second renewal or revocation changes nothing; a second
// forced update of a service is refused as out of sequence).
type Watcher struct {
	leadership Leadership
	terms      []Term
	log        logrus.FieldLogger
	// Poll is how often leadership is asked; Timeout bounds each ask.
	Poll, Timeout time.Duration
	// Began and Ended, when set, are told of each term (the Tracker's
	// memory of another leader's records is dropped at its end).
	Began, Ended func()
	// Leading, when set, is told the answer of each poll (metrics).
	Leading func(bool)
}

// NewWatcher returns a Watcher that runs terms while leadership says this
// manager leads.
func NewWatcher(leadership Leadership, log logrus.FieldLogger, terms ...Term) *Watcher {
	return &Watcher{leadership: leadership, terms: terms, log: log.WithField("component", "lifecycle"), Poll: DefaultLeaderPoll, Timeout: 10 * time.Second}
}

// Run polls leadership until ctx ends, and returns once the last term has.
func (w *Watcher) Run(ctx context.Context) {
	var t *term
	defer func() { t.end(w) }()
	for {
		t = w.poll(ctx, t)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.Poll):
		}
	}
}

// poll asks once whether this manager leads, and begins or ends the term
// t (nil: none) as the answer says.
func (w *Watcher) poll(ctx context.Context, t *term) *term {
	leader, err := w.ask(ctx)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		// The engine does not answer: a term under way goes on (its own
		// calls fail and are retried), none starts.
		w.log.Warnf("cannot tell whether this manager leads the swarm: %v", err)
	case leader && t == nil:
		w.log.Info("this manager leads the swarm; its plugin renews and revokes task credentials")
		return w.begin(ctx)
	case !leader && t != nil:
		t.end(w)
		w.log.Info("this manager no longer leads the swarm; the leader's plugin renews and revokes task credentials")
		return nil
	}
	return t
}

// term is one term of this manager's lead: its context, and the Terms
// running in it.
type term struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *Watcher) begin(ctx context.Context) *term {
	if w.Began != nil {
		w.Began()
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &term{cancel: cancel}
	for _, run := range w.terms {
		t.wg.Add(1)
		go func() { defer t.wg.Done(); run.Run(ctx) }()
	}
	return t
}

// end cancels the term and waits for its Terms: none acts after.
func (t *term) end(w *Watcher) {
	if t == nil {
		return
	}
	t.cancel()
	t.wg.Wait()
	if w.Ended != nil {
		w.Ended()
	}
}

func (w *Watcher) ask(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	leader, err := w.leadership.IsLeader(ctx)
	if err == nil && w.Leading != nil {
		w.Leading(leader)
	}
	return leader, err
}
