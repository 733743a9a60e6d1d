package swarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	swarmtypes "github.com/docker/docker/api/types/swarm"
)

// What rotation asks of the swarm: which of this plugin's secrets opted in,
// which services use them, how old their tasks are, and a forced update.

// selfFiles name the plugin's own ID: the engine mounts its rootfs from
// /var/lib/docker/plugins/<id>/rootfs and its socket directory from
// /run/docker/plugins/<id> (shown in mountinfo whatever the cgroup
// version), and names its container, so its cgroup, after it.
var selfFiles = []string{"/proc/self/mountinfo", "/proc/self/cgroup"}

var pluginID = regexp.MustCompile(`[0-9a-f]{64}`)

// PluginName is the name this plugin is installed under on this engine
// (e.g. vault:latest): the driver name its secrets carry.
func (e *Engine) PluginName(ctx context.Context) (string, error) {
	ids := map[string]bool{}
	for _, f := range selfFiles {
		b, _ := os.ReadFile(f)
		for _, id := range pluginID.FindAllString(string(b), -1) {
			ids[id] = true
		}
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("no plugin ID in %s: is this process a Docker managed plugin?", strings.Join(selfFiles, " or "))
	}
	plugins, err := e.docker.PluginList(ctx, filters.Args{})
	if err != nil {
		return "", fmt.Errorf("cannot list the engine's plugins: %w", err)
	}
	for _, p := range plugins {
		if ids[p.ID] {
			return p.Name, nil
		}
	}
	return "", errors.New("no plugin of the engine's has this plugin's ID")
}

// sameDriver tells whether a secret's driver name names plugin: the CLI
// stores the name as given (vault), the engine keeps its tag (vault:latest).
func sameDriver(driver, plugin string) bool {
	tagged := func(n string) string {
		if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
			return n
		}
		return n + ":latest"
	}
	return tagged(driver) == tagged(plugin)
}

// Secret is a driver secret of this plugin's that opted into rotation.
type Secret struct {
	ID, Name string
	Labels   map[string]string
}

// RotatingSecrets returns plugin's secrets any of whose labels is true
// (vault.rotate and its name under the legacy prefix), each once.
//
// The engine's label filter ANDs its labels, so each label is listed on its
// own: the engine filters, and a round transfers the candidates only, not
// every secret of the swarm.
func (e *Engine) RotatingSecrets(ctx context.Context, plugin string, labels ...string) ([]Secret, error) {
	var out []Secret
	seen := map[string]bool{}
	for _, label := range labels {
		all, err := e.docker.SecretList(ctx, swarmtypes.SecretListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
		if err != nil {
			return nil, fmt.Errorf("cannot list the swarm's secrets: %w", err)
		}
		for _, s := range all {
			if seen[s.ID] || s.Spec.Driver == nil || !sameDriver(s.Spec.Driver.Name, plugin) {
				continue
			}
			if on, _ := strconv.ParseBool(s.Spec.Labels[label]); on {
				seen[s.ID] = true
				out = append(out, Secret{ID: s.ID, Name: s.Spec.Name, Labels: s.Spec.Labels})
			}
		}
	}
	return out, nil
}

// Service is a service that uses rotating secrets, as rotation sees it.
type Service struct {
	ID, Name string
	Labels   map[string]string
	// Secrets are the IDs of the secrets it uses.
	Secrets []string
	// Update is its update's state ("" when it was never updated), and
	// UpdateMessage what swarm says of it.
	Update        swarmtypes.UpdateState
	UpdateMessage string
	// Oldest is when its oldest task that should run was created: the
	// tasks created before a secret's new version hold the old one.
	Oldest time.Time
}

// Settled tells whether no update of the service is under way or stuck: a
// paused update (a failure) is the operator's to look at, and is not forced
// again.
func (s Service) Settled() bool {
	switch s.Update {
	case "", swarmtypes.UpdateStateCompleted, swarmtypes.UpdateStateRollbackCompleted:
		return true
	}
	return false
}

// ServicesUsing returns the services that use any of the secrets.
func (e *Engine) ServicesUsing(ctx context.Context, secretIDs []string) ([]Service, error) {
	wanted := map[string]bool{}
	for _, id := range secretIDs {
		wanted[id] = true
	}
	all, err := e.docker.ServiceList(ctx, swarmtypes.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("cannot list the swarm's services: %w", err)
	}
	var out []Service
	for _, s := range all {
		cs := s.Spec.TaskTemplate.ContainerSpec
		if cs == nil {
			continue
		}
		svc := describe(s)
		for _, ref := range cs.Secrets {
			if wanted[ref.SecretID] {
				svc.Secrets = append(svc.Secrets, ref.SecretID)
			}
		}
		if len(svc.Secrets) == 0 {
			continue
		}
		tasks, err := e.docker.TaskList(ctx, swarmtypes.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", s.ID), filters.Arg("desired-state", "running"))})
		if err != nil {
			return nil, fmt.Errorf("cannot list the tasks of service %s: %w", s.Spec.Name, err)
		}
		for _, t := range tasks {
			if svc.Oldest.IsZero() || t.CreatedAt.Before(svc.Oldest) {
				svc.Oldest = t.CreatedAt
			}
		}
		out = append(out, svc)
	}
	return out, nil
}

// describe is what every Service holds: its names and its update's state.
func describe(s swarmtypes.Service) Service {
	svc := Service{ID: s.ID, Name: s.Spec.Name, Labels: s.Spec.Labels}
	if s.UpdateStatus != nil {
		svc.Update, svc.UpdateMessage = s.UpdateStatus.State, s.UpdateStatus.Message
	}
	return svc
}

// UnsettledError is ForceUpdate's answer for a service whose last update
// is under way, paused or rolling back.
type UnsettledError struct{ Service Service }

func (e *UnsettledError) Error() string {
	return fmt.Sprintf("the update of service %s is %s (%s)", e.Service.Name, e.Service.Update, e.Service.UpdateMessage)
}

// ErrServiceGone is the answer of ForceUpdate and ServiceTasks for a
// service that does not exist (or was removed).
var ErrServiceGone = errors.New("the service is gone")

// ErrUpdatePending is ForceUpdate's answer for a service forced a moment
// ago, whose update swarm has not started yet.
var ErrUpdatePending = errors.New("the service's last forced update has not started yet")

// pendingFor is how long a forced update swarm has not started is taken
// for one about to start. Swarm's updater starts within moments; one that
// never starts (a service with no task to replace: scaled to zero, global
// on no eligible node, a job) must not keep the service from being forced
// again for good.
const pendingFor = time.Minute

// forcePending tells a service forced a moment ago whose update swarm's
// updater has not started: swarm clears a service's update status when the
// service is updated, and sets it again only when its updater starts
// (controlapi's UpdateService, the updater's startUpdate), so until then
// the service looks settled. Forcing it again would be a second rollout for
// one change, whoever forced the first (this manager, another that led a
// moment ago, or an operator's docker service update --force).
func forcePending(s swarmtypes.Service, now time.Time) bool {
	return s.UpdateStatus == nil && s.PreviousSpec != nil &&
		s.PreviousSpec.TaskTemplate.ForceUpdate != s.Spec.TaskTemplate.ForceUpdate &&
		now.Sub(s.UpdatedAt) < pendingFor
}

// ForceUpdate starts a rolling update of the service with nothing changed
// but its force counter, as `docker service update --force` does: its
// tasks are replaced as its own update_config says. `docker stack deploy`
// keeps the counter, so a redeploy does not roll the service again.
//
// A service whose update has not settled is left alone (*UnsettledError),
// and so is one forced already whose update has not started
// (ErrUpdatePending). The update names the version inspected, so two
// managers or two callers that saw the service settled roll it once: the
// second is refused as out of sequence.
func (e *Engine) ForceUpdate(ctx context.Context, serviceID string) error {
	s, _, err := e.docker.ServiceInspectWithRaw(ctx, serviceID, swarmtypes.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("service %s: %w", serviceID, ErrServiceGone)
	}
	if err != nil {
		return fmt.Errorf("cannot inspect service %s: %w", serviceID, err)
	}
	svc := describe(s)
	if !svc.Settled() {
		return &UnsettledError{Service: svc}
	}
	if forcePending(s, e.Now()) {
		return fmt.Errorf("service %s: %w", svc.Name, ErrUpdatePending)
	}
	s.Spec.TaskTemplate.ForceUpdate++
	if _, err := e.docker.ServiceUpdate(ctx, s.ID, s.Version, s.Spec, swarmtypes.ServiceUpdateOptions{}); err != nil {
		return fmt.Errorf("cannot update service %s: %w", s.Spec.Name, err)
	}
	return nil
}
