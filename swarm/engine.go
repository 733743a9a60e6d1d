package swarm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
)

// DockerAPI is the part of the Docker client the plugin uses;
// *client.Client implements it.
type DockerAPI interface {
	Info(ctx context.Context) (system.Info, error)
	NodeInspectWithRaw(ctx context.Context, nodeID string) (swarmtypes.Node, []byte, error)
	NodeList(ctx context.Context, options swarmtypes.NodeListOptions) ([]swarmtypes.Node, error)
	TaskList(ctx context.Context, options swarmtypes.TaskListOptions) ([]swarmtypes.Task, error)
	TaskInspectWithRaw(ctx context.Context, taskID string) (swarmtypes.Task, []byte, error)
	ContainerExecCreate(ctx context.Context, containerID string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, options container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	PluginList(ctx context.Context, filter filters.Args) (types.PluginsListResponse, error)
	SecretList(ctx context.Context, options swarmtypes.SecretListOptions) ([]swarmtypes.Secret, error)
	ServiceList(ctx context.Context, options swarmtypes.ServiceListOptions) ([]swarmtypes.Service, error)
	ServiceInspectWithRaw(ctx context.Context, serviceID string, opts swarmtypes.ServiceInspectOptions) (swarmtypes.Service, []byte, error)
	ServiceUpdate(ctx context.Context, serviceID string, version swarmtypes.Version, service swarmtypes.ServiceSpec, options swarmtypes.ServiceUpdateOptions) (swarmtypes.ServiceUpdateResponse, error)
}

// Socket is where the managed plugin finds the Docker socket (the
// docker-socket mount of plugin/config.json).
const Socket = "/run/docker.sock"

// ErrNoSocket says the docker-socket mount is not set.
var ErrNoSocket = errors.New("the docker-socket mount is not set: docker plugin set <plugin> docker-socket.source=/var/run/docker.sock")

// Engine is this node's Docker engine.
type Engine struct {
	docker DockerAPI
	// Now is the clock the swarm's own times are compared with: this
	// manager's, which stamps them while it leads.
	Now func() time.Time
}

// NewEngine returns an Engine over docker.
func NewEngine(docker DockerAPI) *Engine { return &Engine{docker: docker, Now: time.Now} }

// Dial returns the Engine behind the Docker socket at socket (Socket in the
// managed plugin), or ErrNoSocket when there is no socket there (a missing
// mount leaves /dev/null at Socket; the bench harness names a path that
// does not exist).
func Dial(socket string) (*Engine, error) {
	if st, err := os.Stat(socket); err != nil || st.Mode()&os.ModeSocket == 0 {
		return nil, ErrNoSocket
	}
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+socket), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("failed to create the Docker client: %w", err)
	}
	return NewEngine(c), nil
}

// IsLeader tells whether this node is the swarm's leader: the one manager
// whose dispatcher calls the plugin, and whose plugin runs the task
// lifecycle. Leadership moves, so callers ask again every round.
func (e *Engine) IsLeader(ctx context.Context) (bool, error) {
	info, err := e.docker.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("cannot ask the Docker engine whether it leads the swarm: %w", err)
	}
	if !info.Swarm.ControlAvailable || info.Swarm.NodeID == "" {
		return false, nil
	}
	node, _, err := e.docker.NodeInspectWithRaw(ctx, info.Swarm.NodeID)
	if err != nil {
		return false, fmt.Errorf("cannot inspect this swarm node: %w", err)
	}
	return node.ManagerStatus != nil && node.ManagerStatus.Leader, nil
}

// TaskState is what the lifecycle needs of a task.
type TaskState struct {
	// State is the task's actual state, as its node last reported it.
	State swarmtypes.TaskState
	// Desired is the state the orchestrator wants it in.
	Desired swarmtypes.TaskState
	// NodeDown: the task's node is down (its reports stopped).
	NodeDown bool
}

// Ended tells whether the task is over: its container stopped for good (a
// terminal state; a restart is a new task), or swarm gave the task up on a
// node that is down (desired state shutdown or remove: its replacement runs
// elsewhere, and the node kills the container when it comes back). The
// latter is what Nomad does with the Vault tokens of a lost node's
// allocations: a node cut off from the managers loses its credentials
// rather than keep them indefinitely.
func (s TaskState) Ended() bool {
	switch s.State {
	case swarmtypes.TaskStateComplete, swarmtypes.TaskStateShutdown, swarmtypes.TaskStateFailed,
		swarmtypes.TaskStateRejected, swarmtypes.TaskStateRemove, swarmtypes.TaskStateOrphaned:
		return true
	}
	return s.NodeDown && s.Stopping()
}

// Stopping tells whether swarm wants the task stopped (desired state
// shutdown or remove): an update or a scale-down is replacing or removing
// it, whatever it still runs.
func (s TaskState) Stopping() bool {
	return s.Desired == swarmtypes.TaskStateShutdown || s.Desired == swarmtypes.TaskStateRemove
}

// String says the state for a log line.
func (s TaskState) String() string {
	if s.NodeDown {
		return fmt.Sprintf("%s on a node that is down (desired: %s)", s.State, s.Desired)
	}
	return string(s.State)
}

// Delivered tells whether the task's node has acknowledged the task, and
// with it the task's secrets. The dispatcher fetches a task's secrets when
// the task is assigned, before its node sees it; a fetch for a task in any
// later state is a repeat (a node reconnected, or a new leader rebuilt the
// node's assignments).
func (s TaskState) Delivered() bool {
	switch s.State {
	case swarmtypes.TaskStateNew, swarmtypes.TaskStateAllocated, swarmtypes.TaskStatePending, swarmtypes.TaskStateAssigned:
		return false
	}
	return true
}

// maxIDs bounds the task IDs one list asks for by ID (a query of a few
// kilobytes).
const maxIDs = 100

// nodesPerList is how many nodes' tasks one list asks for: the client
// decodes a list whole, about 1.6 KB of JSON and more of memory a task, so
// that a swarm of 10,000 tasks listed at once would make the plugin's
// memory peak at 60 MB more every round.
const nodesPerList = 20

// Tasks returns the state of every task swarm wants running, and of each
// task of held (by ID) that it keeps in another state: lists of the tasks
// desired running, whatever their history (swarm keeps up to five ended
// tasks a slot, which a list of all tasks would bring every round), the
// nodes' tasks nodesPerList nodes at a time; then lists by ID, a hundred
// at a time, for the held tasks not in them (ended since, being stopped,
// on a node no longer in the swarm). A held task absent from the answer is
// gone from the swarm (its service removed, or its history trimmed).
func (e *Engine) Tasks(ctx context.Context, held []string) (map[string]TaskState, error) {
	nodes, err := e.docker.NodeList(ctx, swarmtypes.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("cannot list the swarm's nodes: %w", err)
	}
	down := map[string]bool{}
	for _, n := range nodes {
		down[n.ID] = n.Status.State == swarmtypes.NodeStateDown
	}
	out := map[string]TaskState{}
	for i := 0; i < len(nodes); i += nodesPerList {
		args := filters.NewArgs(filters.Arg("desired-state", "running"))
		for _, n := range nodes[i:min(i+nodesPerList, len(nodes))] {
			args.Add("node", n.ID)
		}
		running, err := e.docker.TaskList(ctx, swarmtypes.TaskListOptions{Filters: args})
		if cerrdefs.IsNotFound(err) {
			// A node of the batch left the swarm since the node list, and
			// the engine fails the whole list: the batch's held tasks are
			// asked for by ID below.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cannot list the swarm's tasks: %w", err)
		}
		for _, t := range running {
			out[t.ID] = TaskState{State: t.Status.State, Desired: t.DesiredState, NodeDown: down[t.NodeID]}
		}
	}
	var rest []string
	for _, id := range held {
		if _, ok := out[id]; !ok {
			rest = append(rest, id)
		}
	}
	for len(rest) > 0 {
		batch := rest[:min(len(rest), maxIDs)]
		rest = rest[len(batch):]
		args := filters.NewArgs()
		want := make(map[string]bool, len(batch))
		for _, id := range batch {
			args.Add("id", id)
			want[id] = true
		}
		tasks, err := e.docker.TaskList(ctx, swarmtypes.TaskListOptions{Filters: args})
		if err != nil {
			return nil, fmt.Errorf("cannot list the swarm's tasks by ID: %w", err)
		}
		for _, t := range tasks {
			// The engine matches an ID filter as a prefix.
			if want[t.ID] {
				out[t.ID] = TaskState{State: t.Status.State, Desired: t.DesiredState, NodeDown: down[t.NodeID]}
			}
		}
	}
	return out, nil
}

// NodeTasks returns the state of each task of one service on one node,
// by task ID: one Docker call for all of them.
func (e *Engine) NodeTasks(ctx context.Context, serviceID, nodeID string) (map[string]TaskState, error) {
	all, err := e.docker.TaskList(ctx, swarmtypes.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID), filters.Arg("node", nodeID))})
	if err != nil {
		return nil, fmt.Errorf("cannot list the tasks of service %s on node %s: %w", serviceID, nodeID, err)
	}
	out := make(map[string]TaskState, len(all))
	for _, t := range all {
		// The engine resolves a filter's ID by name and prefix too: only
		// the service and node asked for are these.
		if t.ServiceID == serviceID && t.NodeID == nodeID {
			out[t.ID] = TaskState{State: t.Status.State, Desired: t.DesiredState}
		}
	}
	return out, nil
}

// Task returns one task's state; found is false for a task the swarm does
// not know.
func (e *Engine) Task(ctx context.Context, id string) (state TaskState, found bool, err error) {
	t, _, err := e.docker.TaskInspectWithRaw(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return TaskState{}, false, nil
	}
	if err != nil {
		return TaskState{}, false, fmt.Errorf("cannot inspect task %s: %w", id, err)
	}
	// The engine resolves an ID by prefix: asked for "1", it answers for a
	// task whose ID starts with 1. Only the task asked for is this one.
	if t.ID != id {
		return TaskState{}, false, nil
	}
	return TaskState{State: t.Status.State, Desired: t.DesiredState}, true, nil
}
