package swarm

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/pkg/stdcopy"
)

// fakeDocker implements DockerAPI with a function per method, so each test
// sets only what it uses; an unset method panics if called.
type fakeDocker struct {
	DockerAPI
	info       func() (system.Info, error)
	taskList   func(swarmtypes.TaskListOptions) ([]swarmtypes.Task, error)
	execCreate func(cid string, o container.ExecOptions) (container.ExecCreateResponse, error)
	stdout     string
	stderr     string
	exitCode   int
	hang       bool // the exec never writes or ends, as a cat on a stuck mount
}

func (f *fakeDocker) Info(context.Context) (system.Info, error) { return f.info() }
func (f *fakeDocker) TaskList(_ context.Context, o swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
	return f.taskList(o)
}
func (f *fakeDocker) ContainerExecCreate(_ context.Context, cid string, o container.ExecOptions) (container.ExecCreateResponse, error) {
	return f.execCreate(cid, o)
}

// ContainerExecAttach returns the streams multiplexed as the engine sends
// them without a TTY.
func (f *fakeDocker) ContainerExecAttach(context.Context, string, container.ExecAttachOptions) (types.HijackedResponse, error) {
	if f.hang {
		// The hijacked connection stays open and silent: a read returns
		// only when the connection is closed.
		c1, _ := net.Pipe()
		return types.HijackedResponse{Conn: c1, Reader: bufio.NewReader(c1)}, nil
	}
	var b bytes.Buffer
	stdcopy.NewStdWriter(&b, stdcopy.Stdout).Write([]byte(f.stdout))
	if f.stderr != "" {
		stdcopy.NewStdWriter(&b, stdcopy.Stderr).Write([]byte(f.stderr))
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return types.HijackedResponse{Conn: c1, Reader: bufio.NewReader(&b)}, nil
}

func (f *fakeDocker) ContainerExecInspect(context.Context, string) (container.ExecInspect, error) {
	return container.ExecInspect{ExitCode: f.exitCode}, nil
}

func onNode(id string) func() (system.Info, error) {
	return func() (system.Info, error) { return system.Info{Swarm: swarmtypes.Info{NodeID: id}}, nil }
}

func task(node string, state swarmtypes.TaskState, cid string) swarmtypes.Task {
	return swarmtypes.Task{NodeID: node, Status: swarmtypes.TaskStatus{State: state, ContainerStatus: &swarmtypes.ContainerStatus{ContainerID: cid}}}
}

func TestNodeID(t *testing.T) {
	for _, tt := range []struct {
		name string
		info func() (system.Info, error)
		want string
		err  string
	}{
		{name: "a swarm node", info: onNode("node-b"), want: "node-b"},
		{name: "not a swarm node", info: onNode("")},
		{name: "engine unreachable", info: func() (system.Info, error) { return system.Info{}, errors.New("connection refused") }, err: "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewEngine(&fakeDocker{info: tt.info}).NodeID(context.Background())
			if got != tt.want || fmt.Sprint(err) != cmp.Or(tt.err, "<nil>") {
				t.Errorf("NodeID = %q, %v; want %q, %s", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestServiceTasks(t *testing.T) {
	var gotFilter swarmtypes.TaskListOptions
	e := NewEngine(&fakeDocker{taskList: func(o swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
		gotFilter = o
		starting := task("node-b", swarmtypes.TaskStateStarting, "")
		starting.Status.ContainerStatus = nil
		return []swarmtypes.Task{task("node-a", swarmtypes.TaskStateRunning, "container-a"), starting}, nil
	}})
	got, err := e.ServiceTasks(context.Background(), "swarmvault-helper")
	if err != nil {
		t.Fatal(err)
	}
	want := []ServiceTask{{Node: "node-a", Running: true, Container: "container-a"}, {Node: "node-b"}}
	if !slices.Equal(got, want) {
		t.Errorf("ServiceTasks = %+v, want %+v", got, want)
	}
	if gotFilter.Filters.Get("service")[0] != "swarmvault-helper" || gotFilter.Filters.Get("desired-state")[0] != "running" {
		t.Errorf("task filter %v", gotFilter.Filters)
	}

	gone := NewEngine(&fakeDocker{taskList: func(swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
		return nil, cerrdefs.ErrNotFound.WithMessage("service helper not found")
	}})
	if _, err := gone.ServiceTasks(context.Background(), "helper"); !errors.Is(err, ErrServiceGone) {
		t.Errorf("a service that does not exist: error %v, want ErrServiceGone", err)
	}
}

func TestReadFile(t *testing.T) {
	var gotCID string
	var gotCmd []string
	f := &fakeDocker{
		execCreate: func(cid string, o container.ExecOptions) (container.ExecCreateResponse, error) {
			gotCID, gotCmd = cid, o.Cmd
			return container.ExecCreateResponse{ID: "exec1"}, nil
		},
		stdout: "hvs.bootstrap-token\n",
	}
	got, err := NewEngine(f).ReadFile(context.Background(), "container-b", "/run/secrets/vault_token", 20)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hvs.bootstrap-token\n" {
		t.Errorf("ReadFile = %q", got)
	}
	if gotCID != "container-b" || strings.Join(gotCmd, " ") != "cat /run/secrets/vault_token" {
		t.Errorf("exec in %s: %v", gotCID, gotCmd)
	}
}

func TestReadFileErrors(t *testing.T) {
	exec := func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
		return container.ExecCreateResponse{ID: "e"}, nil
	}
	t.Run("cat fails", func(t *testing.T) {
		f := &fakeDocker{execCreate: exec, stderr: "cat: can't open '/run/secrets/token': No such file or directory\n", exitCode: 1}
		_, err := NewEngine(f).ReadFile(context.Background(), "c1", "/run/secrets/token", secretLimit)
		var exit *ExitError
		if !errors.As(err, &exit) || *exit != (ExitError{Code: 1, Stderr: "cat: can't open '/run/secrets/token': No such file or directory"}) {
			t.Errorf("error %#v", err)
		}
	})
	t.Run("larger than the limit", func(t *testing.T) {
		f := &fakeDocker{execCreate: exec, stdout: strings.Repeat("x", secretLimit+1)}
		if _, err := NewEngine(f).ReadFile(context.Background(), "c1", "/run/secrets/token", secretLimit); !errors.Is(err, ErrTooLarge) {
			t.Errorf("error %v, want ErrTooLarge", err)
		}
		f.stdout = strings.Repeat("x", secretLimit)
		if got, err := NewEngine(f).ReadFile(context.Background(), "c1", "/run/secrets/token", secretLimit); err != nil || len(got) != secretLimit {
			t.Errorf("at the limit: %d bytes, error %v", len(got), err)
		}
	})
	t.Run("exec refused", func(t *testing.T) {
		f := &fakeDocker{execCreate: func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
			return container.ExecCreateResponse{}, errors.New("container c1 is not running")
		}}
		_, err := NewEngine(f).ReadFile(context.Background(), "c1", "/run/secrets/token", secretLimit)
		if want := "cannot exec cat: container c1 is not running"; err == nil || err.Error() != want {
			t.Errorf("error %v, want %s", err, want)
		}
	})
}

// secretLimit is as large as the limit of the helper bootstrap: more than
// one buffer of stdcopy's.
const secretLimit = 500 * 1024

func helperExec(f *fakeDocker) *fakeDocker {
	f.execCreate = func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
		return container.ExecCreateResponse{ID: "e"}, nil
	}
	return f
}

// The attached stream ignores the context: without closing it when the
// deadline ends, a cat that never exits held the login, and every later one.
func TestAHungExecEndsAtTheDeadline(t *testing.T) {
	e := NewEngine(helperExec(&fakeDocker{hang: true}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.ReadFile(ctx, "c", "/run/secrets/boot", secretLimit); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFile still blocked 5 s after its deadline")
	}
}

// What cat says on stderr is capped: it ends up in a log line.
func TestHelperStderrIsCapped(t *testing.T) {
	e := NewEngine(helperExec(&fakeDocker{exitCode: 1, stderr: strings.Repeat("e", 100000)}))
	_, err := e.ReadFile(context.Background(), "c", "/run/secrets/boot", secretLimit)
	if err == nil || len(err.Error()) > maxStderr+300 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
}

// The re-fetch guard's view: one list of a service's tasks on a node, by
// exact IDs (the engine also matches a filter's ID as a name or a prefix).
func TestNodeTasks(t *testing.T) {
	var gotFilter swarmtypes.TaskListOptions
	mk := func(id, service, node string, state swarmtypes.TaskState) swarmtypes.Task {
		return swarmtypes.Task{ID: id, ServiceID: service, NodeID: node, Status: swarmtypes.TaskStatus{State: state}, DesiredState: swarmtypes.TaskStateRunning}
	}
	e := NewEngine(&fakeDocker{taskList: func(o swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
		gotFilter = o
		return []swarmtypes.Task{mk("t1", "svc", "n1", swarmtypes.TaskStateRunning), mk("t2", "svc", "n1", swarmtypes.TaskStateAssigned),
			mk("t3", "svc-other", "n1", swarmtypes.TaskStateRunning), mk("t4", "svc", "n1-other", swarmtypes.TaskStateRunning)}, nil
	}})
	got, err := e.NodeTasks(context.Background(), "svc", "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]TaskState{"t1": {State: swarmtypes.TaskStateRunning, Desired: swarmtypes.TaskStateRunning}, "t2": {State: swarmtypes.TaskStateAssigned, Desired: swarmtypes.TaskStateRunning}}
	if !maps.Equal(got, want) {
		t.Errorf("NodeTasks = %+v, want %+v", got, want)
	}
	if !slices.Equal(gotFilter.Filters.Get("service"), []string{"svc"}) || !slices.Equal(gotFilter.Filters.Get("node"), []string{"n1"}) || gotFilter.Filters.Len() != 2 {
		t.Errorf("task filter %v", gotFilter.Filters)
	}
}
