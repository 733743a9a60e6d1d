package lifecycle

import (
	"context"
	"errors"
	"sync"

	"github.com/sirupsen/logrus"

	swarmtypes "github.com/docker/docker/api/types/swarm"

	"github.com/swarmvault/swarmvault/swarm"
)

// Forcer starts rolling updates; *swarm.Engine implements it. A service
// forced already whose update swarm has not started is refused
// (swarm.ErrUpdatePending).
type Forcer interface {
	ForceUpdate(ctx context.Context, serviceID string) error
}

// Observer is told what the leader side sees, for metrics;
// *metrics.Metrics implements it.
type Observer interface {
	// Leading: whether this manager leads, at each poll.
	Leading(bool)
	// Rollout: a rollout rotation asked for, and its outcome: started,
	// unsettled (the last update had not settled), failed (the update
	// call failed); or rollout_failed: a service's last rollout failed
	// (paused, rolled back), once per such state.
	Rollout(outcome string)
	// Tracked: the task credentials the leader holds, after each round.
	Tracked(n int)
	// Renewal and Revocation: one task's credentials renewed or revoked,
	// or not (tried again at the next round).
	Renewal(ok bool)
	Revocation(ok bool)
}

// Rollouts is the process's one rollout guard: the Loop (credentials near
// their max TTL) and the Rotator (a new value) both roll services through
// it, one roll at a time, so that the two never force one service at once.
// A service forced a moment ago, by either or by another manager, is left
// alone until swarm starts its update (swarm.ErrUpdatePending), and one
// whose update runs until it settles. It keeps what it last reported of
// each service it left alone, so that a stuck update is one line, not one
// per round.
type Rollouts struct {
	swarm Forcer
	log   logrus.FieldLogger
	// Observer, when set, is told each outcome.
	Observer Observer

	mu       sync.Mutex
	reported map[string]swarmtypes.UpdateState
}

// NewRollouts returns the rollout guard over sw.
func NewRollouts(sw Forcer, log logrus.FieldLogger) *Rollouts {
	return &Rollouts{swarm: sw, log: log.WithField("component", "rotation"), reported: map[string]swarmtypes.UpdateState{}}
}

func (r *Rollouts) observe(outcome string) {
	if r.Observer != nil {
		r.Observer.Rollout(outcome)
	}
}

// roll forces a rolling update of the service and logs why, in one info
// line. A service whose update has not settled is left alone, and
// reported once per state: forcing it again would restart a rollout under
// way, or loop on one that failed; so is one forced a moment ago whose
// update swarm has not started. done tells that nothing is left to do: the
// service rolls, or is gone.
func (r *Rollouts) roll(ctx context.Context, id, name, why string) (done bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	entry := r.log.WithField("service", name)
	err := r.swarm.ForceUpdate(ctx, id)
	var unsettled *swarm.UnsettledError
	switch {
	case errors.Is(err, swarm.ErrUpdatePending):
		// Forced a moment ago, for this change or one before it: once
		// swarm starts that update, its tasks fetch the current value;
		// the next round looks again.
		return false
	case errors.As(err, &unsettled):
		r.observe("unsettled")
		r.unsettledLocked(unsettled.Service)
		return false
	case errors.Is(err, swarm.ErrServiceGone):
		return true
	case err != nil:
		r.observe("failed")
		entry.Errorf("cannot roll the service: %v", err)
		return false
	}
	r.observe("started")
	delete(r.reported, id)
	entry.Infof("rolling the service (as docker service update --force does): %s", why)
	return true
}

// unsettled reports a service left alone, once per update state: at info
// while it rolls, as a warning when its update failed (paused, or rolling
// back), which is the operator's to look at.
func (r *Rollouts) unsettled(svc swarm.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsettledLocked(svc)
}

func (r *Rollouts) unsettledLocked(svc swarm.Service) {
	if r.reported[svc.ID] == svc.Update {
		return
	}
	r.reported[svc.ID] = svc.Update
	entry := r.log.WithField("service", svc.Name)
	if svc.Update == swarmtypes.UpdateStateUpdating {
		entry.Infof("the service's update is %s (%s): not rolled again until it settles", svc.Update, svc.UpdateMessage)
		return
	}
	r.observe("rollout_failed")
	entry.Warnf("the service's last rollout failed, its update is %s (%s): not rolled again until it settles; see docker service ps %s", svc.Update, svc.UpdateMessage, svc.Name)
}

// settled forgets what was reported of a service that settled.
func (r *Rollouts) settled(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reported, id)
}
