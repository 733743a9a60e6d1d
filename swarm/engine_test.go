package swarm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
)

// The lifecycle's two questions of a task state: has its node seen it (a
// fetch is then a repeat), and has its container stopped for good.
func TestTaskStates(t *testing.T) {
	for _, tt := range []struct {
		state            swarmtypes.TaskState
		delivered, ended bool
	}{
		{swarmtypes.TaskStateNew, false, false},
		{swarmtypes.TaskStatePending, false, false},
		{swarmtypes.TaskStateAssigned, false, false},
		{swarmtypes.TaskStateAccepted, true, false},
		{swarmtypes.TaskStatePreparing, true, false},
		{swarmtypes.TaskStateStarting, true, false},
		{swarmtypes.TaskStateRunning, true, false},
		{swarmtypes.TaskStateComplete, true, true},
		{swarmtypes.TaskStateShutdown, true, true},
		{swarmtypes.TaskStateFailed, true, true},
		{swarmtypes.TaskStateRejected, true, true},
		{swarmtypes.TaskStateRemove, true, true},
		{swarmtypes.TaskStateOrphaned, true, true},
	} {
		s := TaskState{State: tt.state, Desired: swarmtypes.TaskStateRunning}
		if s.Delivered() != tt.delivered || s.Ended() != tt.ended {
			t.Errorf("%s: delivered %v ended %v, want %v %v", tt.state, s.Delivered(), s.Ended(), tt.delivered, tt.ended)
		}
	}
	// A running task on a node that is down is over once swarm gives it up,
	// not before: a node may be down for a moment.
	for _, tt := range []struct {
		s     TaskState
		ended bool
	}{
		{TaskState{State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateRunning, NodeDown: true}, false},
		{TaskState{State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateShutdown, NodeDown: true}, true},
		{TaskState{State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateRemove, NodeDown: true}, true},
		{TaskState{State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateShutdown}, false},
	} {
		if tt.s.Ended() != tt.ended {
			t.Errorf("%s: ended %v", tt.s, tt.s.Ended())
		}
	}
}

// listDocker keeps tasks as the engine does, history included, and
// answers TaskList's desired-state and id filters as it does (an id as a
// prefix).
type listDocker struct {
	DockerAPI
	tasks []swarmtypes.Task
	nodes []swarmtypes.Node
	lists *[]filters.Args
	// left is a node that leaves the swarm after the node list.
	left string
}

func (d listDocker) TaskList(_ context.Context, o swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
	*d.lists = append(*d.lists, o.Filters)
	for _, n := range o.Filters.Get("node") {
		if n == d.left {
			return nil, cerrdefs.ErrNotFound.WithMessage("node " + n + " not found")
		}
	}
	var out []swarmtypes.Task
	for _, t := range d.tasks {
		if o.Filters.Contains("desired-state") && !o.Filters.ExactMatch("desired-state", string(t.DesiredState)) {
			continue
		}
		if ids := o.Filters.Get("id"); len(ids) > 0 && !slices.ContainsFunc(ids, func(id string) bool { return strings.HasPrefix(t.ID, id) }) {
			continue
		}
		if o.Filters.Contains("node") && !o.Filters.ExactMatch("node", t.NodeID) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

func (d listDocker) NodeList(context.Context, swarmtypes.NodeListOptions) ([]swarmtypes.Node, error) {
	return d.nodes, nil
}

// Issue 23: a round lists the tasks swarm wants running, not the history
// swarm keeps of every slot, twenty nodes at a time, and asks by ID, a
// hundred at a time, for the held tasks not among them.
func TestTasks(t *testing.T) {
	task := func(id, node string, desired, state swarmtypes.TaskState) swarmtypes.Task {
		return swarmtypes.Task{ID: id, NodeID: node, DesiredState: desired, Status: swarmtypes.TaskStatus{State: state}}
	}
	d := listDocker{lists: new([]filters.Args), nodes: []swarmtypes.Node{
		{ID: "n1", Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateDown}},
		{ID: "n2", Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateReady}},
	}}
	for i := range 40 {
		d.nodes = append(d.nodes, swarmtypes.Node{ID: fmt.Sprintf("more%02d", i), Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateReady}})
		d.tasks = append(d.tasks, task(fmt.Sprintf("on-more%02d", i), fmt.Sprintf("more%02d", i), swarmtypes.TaskStateRunning, swarmtypes.TaskStateRunning))
	}
	d.tasks = append(d.tasks,
		task("t1", "n1", swarmtypes.TaskStateShutdown, swarmtypes.TaskStateRunning), // on a node that is down, given up
		task("t2", "n2", swarmtypes.TaskStateRunning, swarmtypes.TaskStateRunning),
		task("x1", "n2", swarmtypes.TaskStateShutdown, swarmtypes.TaskStateComplete)) // "x" is its prefix
	var held []string
	for i := range 500 {
		d.tasks = append(d.tasks, task(fmt.Sprintf("history%03d", i), "n2", swarmtypes.TaskStateShutdown, swarmtypes.TaskStateComplete))
	}
	for i := range 150 {
		id := fmt.Sprintf("ended%03d", i)
		d.tasks = append(d.tasks, task(id, "n2", swarmtypes.TaskStateShutdown, swarmtypes.TaskStateFailed))
		held = append(held, id)
	}
	held = append(held, "t1", "t2", "x", "gone")
	got, err := NewEngine(d).Tasks(context.Background(), held)
	if err != nil {
		t.Fatal(err)
	}
	if !got["t1"].Ended() || got["t2"].Ended() || !got["ended042"].Ended() || got["on-more39"].Ended() || len(got) != 192 {
		t.Errorf("%d tasks: t1 %+v, t2 %+v, ended042 %+v", len(got), got["t1"], got["t2"], got["ended042"])
	}
	for _, id := range []string{"x", "x1", "gone", "history000"} {
		if _, ok := got[id]; ok {
			t.Errorf("task %s in the answer", id)
		}
	}
	lists := *d.lists
	if len(lists) != 5 {
		t.Fatalf("lists: %v", lists)
	}
	nodes := 0
	for _, f := range lists[:3] {
		nodes += len(f.Get("node"))
		if !f.ExactMatch("desired-state", "running") || len(f.Get("node")) > 20 || f.Contains("id") {
			t.Errorf("a list of the tasks desired running: %v", f)
		}
	}
	if nodes != 42 {
		t.Errorf("the lists of the tasks desired running name %d nodes, want 42", nodes)
	}
	for _, f := range lists[3:] {
		if n := len(f.Get("id")); n == 0 || n > 100 || f.Contains("desired-state") {
			t.Errorf("a list by ID: %v", f)
		}
	}
}

// Dial uses the socket it is given, and only a socket: the managed plugin's
// unset mount leaves /dev/null, the bench harness names a path that does
// not exist, and neither may reach some other Docker engine.
func TestDialUsesTheSocketGiven(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if e, err := Dial(sock); err != nil || e == nil {
		t.Errorf("Dial(%s): %v", sock, err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "none"), file, os.DevNull} {
		if _, err := Dial(path); !errors.Is(err, ErrNoSocket) {
			t.Errorf("Dial(%s): %v, want ErrNoSocket", path, err)
		}
	}
}

// prefixDocker resolves a task ID as the engine does: the task whose ID is
// the one asked for, else the one whose ID starts with it.
type prefixDocker struct {
	DockerAPI
	ids []string
}

func (f prefixDocker) TaskInspectWithRaw(_ context.Context, id string) (swarmtypes.Task, []byte, error) {
	for _, exact := range []bool{true, false} {
		for _, tid := range f.ids {
			if tid == id || !exact && strings.HasPrefix(tid, id) {
				return swarmtypes.Task{ID: tid, DesiredState: swarmtypes.TaskStateRunning,
					Status: swarmtypes.TaskStatus{State: swarmtypes.TaskStateRunning}}, nil, nil
			}
		}
	}
	return swarmtypes.Task{}, nil, fmt.Errorf("task %s: %w", id, cerrdefs.ErrNotFound)
}

// A task ID that only begins another task's ID names no task: the engine
// answered for task 1xq… when asked for task 1, and a fetch for a task that
// had not started was refused as a repeat.
func TestTaskIsTheOneAskedFor(t *testing.T) {
	e := NewEngine(prefixDocker{ids: []string{"1xqz7hqsm0ptj6odzyzz1gmt4"}})
	for _, tt := range []struct {
		id    string
		found bool
	}{
		{"1xqz7hqsm0ptj6odzyzz1gmt4", true},
		{"1", false},
		{"1xqz7hqsm0ptj6odzyzz1gmt", false},
		{"2", false},
	} {
		st, found, err := e.Task(context.Background(), tt.id)
		if err != nil || found != tt.found || found && st.State != swarmtypes.TaskStateRunning {
			t.Errorf("task %s: %v found %v, %v; want found %v", tt.id, st, found, err, tt.found)
		}
	}
}

type leaderDocker struct {
	DockerAPI
	info   system.Info
	leader bool
	err    error
}

func (f *leaderDocker) Info(context.Context) (system.Info, error) { return f.info, f.err }
func (f *leaderDocker) NodeInspectWithRaw(_ context.Context, id string) (swarmtypes.Node, []byte, error) {
	return swarmtypes.Node{ID: id, ManagerStatus: &swarmtypes.ManagerStatus{Leader: f.leader}}, nil, nil
}

func TestIsLeader(t *testing.T) {
	manager := system.Info{Swarm: swarmtypes.Info{NodeID: "n1", ControlAvailable: true}}
	worker := system.Info{Swarm: swarmtypes.Info{NodeID: "n2"}}
	for _, tt := range []struct {
		name string
		d    *leaderDocker
		want bool
	}{
		{"the leader", &leaderDocker{info: manager, leader: true}, true},
		{"a manager that does not lead", &leaderDocker{info: manager}, false},
		{"a worker", &leaderDocker{info: worker, leader: true}, false},
		{"not in a swarm", &leaderDocker{}, false},
	} {
		if got, err := NewEngine(tt.d).IsLeader(context.Background()); got != tt.want || err != nil {
			t.Errorf("%s: %v %v", tt.name, got, err)
		}
	}
	if _, err := NewEngine(&leaderDocker{err: errors.New("connection refused")}).IsLeader(context.Background()); err == nil {
		t.Error("an engine that does not answer gives no error")
	}
}

// A node that leaves the swarm between the node list and a task list fails
// its batch's list: the held tasks of that batch are asked for by ID.
func TestTasksWhenANodeLeavesDuringTheRound(t *testing.T) {
	d := listDocker{lists: new([]filters.Args), left: "n1", nodes: []swarmtypes.Node{
		{ID: "n1", Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateReady}},
		{ID: "n2", Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateReady}},
	}}
	d.tasks = []swarmtypes.Task{
		{ID: "on-n2", NodeID: "n2", DesiredState: swarmtypes.TaskStateRunning, Status: swarmtypes.TaskStatus{State: swarmtypes.TaskStateRunning}},
		{ID: "held", NodeID: "n2", DesiredState: swarmtypes.TaskStateRunning, Status: swarmtypes.TaskStatus{State: swarmtypes.TaskStateRunning}},
	}
	got, err := NewEngine(d).Tasks(context.Background(), []string{"held"})
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := got["held"]; !ok || st.Ended() {
		t.Errorf("the held task: %+v, %v", st, ok)
	}
}
