package lifecycle

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"

	swarmtypes "github.com/docker/docker/api/types/swarm"

	"github.com/swarmvault/swarmvault/swarm"
)

// Forcer starts rolling updates; *swarm.Engine implements it.
type Forcer interface {
	ForceUpdate(ctx context.Context, serviceID string) error
}

// Observer is told what the leader's loops see, for metrics;
// *metrics.Metrics implements it.
type Observer interface {
	// Leading: whether this manager leads, at each round.
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

// rollouts rolls services for rotation: the Rotator for a new KV version,
// the Loop for credentials near their max TTL, each with its own. It keeps
// what it last reported of each service it left alone, so that a stuck
// update is one line, not one per round.
type rollouts struct {
	swarm    Forcer
	log      logrus.FieldLogger
	reported map[string]swarmtypes.UpdateState
	observer Observer // nil: none
}

func (r *rollouts) observe(outcome string) {
	if r.observer != nil {
		r.observer.Rollout(outcome)
	}
}

func newRollouts(sw Forcer, log logrus.FieldLogger) *rollouts {
	return &rollouts{swarm: sw, log: log, reported: map[string]swarmtypes.UpdateState{}}
}

// roll forces a rolling update of the service and logs why, in one info
// line. A service whose update has not settled is left alone, and reported
// once per state: forcing it again would restart a rollout under way, or
// loop on one that failed. done tells that nothing is left to do: the
// service rolls, or is gone.
func (r *rollouts) roll(ctx context.Context, id, name, why string) (done bool) {
	entry := r.log.WithField("service", name)
	err := r.swarm.ForceUpdate(ctx, id)
	var unsettled *swarm.UnsettledError
	switch {
	case errors.As(err, &unsettled):
		r.observe("unsettled")
		r.unsettled(unsettled.Service)
		return false
	case errors.Is(err, swarm.ErrServiceGone):
		return true
	case err != nil:
		r.observe("failed")
		entry.Errorf("rotation: cannot roll the service: %v", err)
		return false
	}
	r.observe("started")
	delete(r.reported, id)
	entry.Infof("rotation: rolling the service (as docker service update --force does): %s", why)
	return true
}

// unsettled reports a service left alone, once per update state: at info
// while it rolls, as a warning when its update failed (paused, or rolling
// back), which is the operator's to look at.
func (r *rollouts) unsettled(svc swarm.Service) {
	if r.reported[svc.ID] == svc.Update {
		return
	}
	r.reported[svc.ID] = svc.Update
	entry := r.log.WithField("service", svc.Name)
	if svc.Update == swarmtypes.UpdateStateUpdating {
		entry.Infof("rotation: the service's update is %s (%s): not rolled again until it settles", svc.Update, svc.UpdateMessage)
		return
	}
	r.observe("rollout_failed")
	entry.Warnf("rotation: the service's last rollout failed, its update is %s (%s): not rolled again until it settles; see docker service ps %s", svc.Update, svc.UpdateMessage, svc.Name)
}

// settled forgets what was reported of a service that settled.
func (r *rollouts) settled(id string) { delete(r.reported, id) }
