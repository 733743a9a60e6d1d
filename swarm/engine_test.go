package swarm

import (
	"context"
	"errors"
	"testing"

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

type listDocker struct {
	DockerAPI
}

func (listDocker) TaskList(context.Context, swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
	return []swarmtypes.Task{
		{ID: "t1", NodeID: "n1", DesiredState: swarmtypes.TaskStateShutdown, Status: swarmtypes.TaskStatus{State: swarmtypes.TaskStateRunning}},
		{ID: "t2", NodeID: "n2", DesiredState: swarmtypes.TaskStateRunning, Status: swarmtypes.TaskStatus{State: swarmtypes.TaskStateRunning}},
	}, nil
}

func (listDocker) NodeList(context.Context, swarmtypes.NodeListOptions) ([]swarmtypes.Node, error) {
	return []swarmtypes.Node{
		{ID: "n1", Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateDown}},
		{ID: "n2", Status: swarmtypes.NodeStatus{State: swarmtypes.NodeStateReady}},
	}, nil
}

func TestTasks(t *testing.T) {
	got, err := NewEngine(listDocker{}).Tasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !got["t1"].Ended() || got["t2"].Ended() || len(got) != 2 {
		t.Errorf("tasks %+v", got)
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
