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
		s := TaskState{State: tt.state}
		if s.Delivered() != tt.delivered || s.Ended() != tt.ended {
			t.Errorf("%s: delivered %v ended %v, want %v %v", tt.state, s.Delivered(), s.Ended(), tt.delivered, tt.ended)
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
