package swarm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
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

func TestHelperReaderReadsTheTaskOnThisNode(t *testing.T) {
	var gotFilter swarmtypes.TaskListOptions
	var gotCID string
	var gotCmd []string
	f := &fakeDocker{
		info: onNode("node-b"),
		taskList: func(o swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
			gotFilter = o
			return []swarmtypes.Task{
				task("node-a", swarmtypes.TaskStateRunning, "container-a"),
				task("node-b", swarmtypes.TaskStateStarting, "container-b-old"),
				task("node-b", swarmtypes.TaskStateRunning, "container-b"),
			}, nil
		},
		execCreate: func(cid string, o container.ExecOptions) (container.ExecCreateResponse, error) {
			gotCID, gotCmd = cid, o.Cmd
			return container.ExecCreateResponse{ID: "exec1"}, nil
		},
		stdout: "hvs.bootstrap-token\n",
	}
	r, err := NewHelperReader(f, "swarmvault-helper", "vault_token")
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hvs.bootstrap-token" {
		t.Errorf("Read = %q", got)
	}
	if gotCID != "container-b" || strings.Join(gotCmd, " ") != "cat /run/secrets/vault_token" {
		t.Errorf("exec in %s: %v", gotCID, gotCmd)
	}
	if gotFilter.Filters.Get("service")[0] != "swarmvault-helper" || gotFilter.Filters.Get("desired-state")[0] != "running" {
		t.Errorf("task filter %v", gotFilter.Filters)
	}
}

func TestHelperReaderErrors(t *testing.T) {
	running := func(swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
		return []swarmtypes.Task{task("node-a", swarmtypes.TaskStateRunning, "c1")}, nil
	}
	exec := func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
		return container.ExecCreateResponse{ID: "e"}, nil
	}
	tests := []struct {
		name    string
		fake    *fakeDocker
		wantErr string
	}{
		{
			name:    "not a swarm node",
			fake:    &fakeDocker{info: onNode("")},
			wantErr: "this Docker engine is not a swarm node: the helper service bootstrap needs swarm mode",
		},
		{
			name:    "engine unreachable",
			fake:    &fakeDocker{info: func() (system.Info, error) { return system.Info{}, errors.New("connection refused") }},
			wantErr: "cannot ask the Docker engine for this node's ID: connection refused",
		},
		{
			name:    "helper missing",
			fake:    &fakeDocker{info: onNode("node-a"), taskList: func(swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) { return nil, nil }},
			wantErr: "HELPER_SERVICE helper has no running tasks: create it (global, on the managers) or fix the name",
		},
		{
			name: "helper service does not exist",
			fake: &fakeDocker{info: onNode("node-a"), taskList: func(swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
				return nil, cerrdefs.ErrNotFound.WithMessage("service helper not found")
			}},
			wantErr: "HELPER_SERVICE helper does not exist: create it (global, on the managers) or fix the name",
		},
		{
			name:    "helper not on this node",
			fake:    &fakeDocker{info: onNode("node-b"), taskList: running},
			wantErr: "HELPER_SERVICE helper has no running task on this node (node-b): deploy it in global mode on every manager",
		},
		{
			name: "secret not attached to the helper",
			fake: &fakeDocker{info: onNode("node-a"), taskList: running, execCreate: exec,
				stderr: "cat: can't open '/run/secrets/token': No such file or directory\n", exitCode: 1},
			wantErr: "cannot read /run/secrets/token in HELPER_SERVICE helper (exit 1: cat: can't open '/run/secrets/token': No such file or directory): attach HELPER_SECRET token to the helper, and use an image with cat",
		},
		{
			name:    "empty secret",
			fake:    &fakeDocker{info: onNode("node-a"), taskList: running, execCreate: exec, stdout: " \n"},
			wantErr: "/run/secrets/token in HELPER_SERVICE helper is empty",
		},
		{
			name:    "garbage larger than any secret",
			fake:    &fakeDocker{info: onNode("node-a"), taskList: running, execCreate: exec, stdout: strings.Repeat("x", maxSecretSize+1)},
			wantErr: "failed to read /run/secrets/token from the helper's container c1: the helper's secret is larger than 512000 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewHelperReader(tt.fake, "helper", "token")
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Read(context.Background())
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error:\n got %v\nwant %s", err, tt.wantErr)
			}
		})
	}
}

func TestNewHelperReaderValidates(t *testing.T) {
	for _, tt := range []struct{ service, secret, wantErr string }{
		{"", "s", "HELPER_SERVICE is not set: name the swarm service that holds the plugin's bootstrap secret"},
		{"h", "", "HELPER_SECRET is not set: name the secret, as mounted in the helper service's /run/secrets/, to read"},
		{"h", "../etc/passwd", "HELPER_SECRET=../etc/passwd is not a file name in /run/secrets/"},
	} {
		if _, err := NewHelperReader(&fakeDocker{}, tt.service, tt.secret); err == nil || err.Error() != tt.wantErr {
			t.Errorf("(%q, %q): error %v, want %s", tt.service, tt.secret, err, tt.wantErr)
		}
	}
}

func helperOnThisNode(f *fakeDocker) *fakeDocker {
	f.info = onNode("n")
	f.taskList = func(swarmtypes.TaskListOptions) ([]swarmtypes.Task, error) {
		return []swarmtypes.Task{task("n", swarmtypes.TaskStateRunning, "c")}, nil
	}
	f.execCreate = func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
		return container.ExecCreateResponse{ID: "e"}, nil
	}
	return f
}

// The attached stream ignores the context: without closing it when the
// deadline ends, a cat that never exits held the login, and every later one.
func TestAHungExecEndsAtTheDeadline(t *testing.T) {
	r, err := NewHelperReader(helperOnThisNode(&fakeDocker{hang: true}), "helper", "boot")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := r.Read(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "reading /run/secrets/boot from the helper's container c took too long") {
			t.Errorf("error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked 5 s after its deadline")
	}
}

// What cat says on stderr is capped: it ends up in a log line.
func TestHelperStderrIsCapped(t *testing.T) {
	r, err := NewHelperReader(helperOnThisNode(&fakeDocker{exitCode: 1, stderr: strings.Repeat("e", 100000)}), "helper", "boot")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Read(context.Background())
	if err == nil || len(err.Error()) > maxStderr+300 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
}
