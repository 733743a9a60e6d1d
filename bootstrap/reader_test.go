package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmvault/swarmvault/swarm"
)

// fakeDocker is this node's engine as the bootstrap sees it: node is its
// node ID, tasks the helper's, and file what ReadFile gives, unless read is
// set. It records what it was asked.
type fakeDocker struct {
	node     string
	nodeErr  error
	tasks    []swarm.ServiceTask
	tasksErr error
	file     string
	read     func(ctx context.Context) ([]byte, error)

	service, container, path string
	limit                    int
}

func (f *fakeDocker) NodeID(context.Context) (string, error) { return f.node, f.nodeErr }

func (f *fakeDocker) ServiceTasks(_ context.Context, service string) ([]swarm.ServiceTask, error) {
	f.service = service
	return f.tasks, f.tasksErr
}

func (f *fakeDocker) ReadFile(ctx context.Context, containerID, path string, limit int) ([]byte, error) {
	f.container, f.path, f.limit = containerID, path, limit
	if f.read != nil {
		return f.read(ctx)
	}
	return []byte(f.file), nil
}

// helperHolding is a helper whose task runs on this node (n), in container
// c, its secret file holding value.
func helperHolding(value string) *fakeDocker {
	return &fakeDocker{node: "n", tasks: []swarm.ServiceTask{{Node: "n", Running: true, Container: "c"}}, file: value}
}

func failing(err error) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) { return nil, err }
}

func TestReaderReadsTheTaskOnThisNode(t *testing.T) {
	f := &fakeDocker{
		node: "node-b",
		tasks: []swarm.ServiceTask{
			{Node: "node-a", Running: true, Container: "container-a"},
			{Node: "node-b", Container: "container-b-old"},
			{Node: "node-b", Running: true},
			{Node: "node-b", Running: true, Container: "container-b"},
		},
		file: "hvs.bootstrap-token\n",
	}
	r, err := NewReader(f, "swarmvault-helper", "vault_token")
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
	if f.service != "swarmvault-helper" || f.container != "container-b" || f.path != "/run/secrets/vault_token" {
		t.Errorf("read %s in %s of service %s", f.path, f.container, f.service)
	}
	if f.limit != 512000 {
		t.Errorf("read at most %d bytes", f.limit)
	}
}

func TestReaderErrors(t *testing.T) {
	running := []swarm.ServiceTask{{Node: "node-a", Running: true, Container: "c1"}}
	tests := []struct {
		name    string
		fake    *fakeDocker
		wantErr string
	}{
		{
			name:    "not a swarm node",
			fake:    &fakeDocker{},
			wantErr: "this Docker engine is not a swarm node: the helper service bootstrap needs swarm mode",
		},
		{
			name:    "engine unreachable",
			fake:    &fakeDocker{nodeErr: errors.New("connection refused")},
			wantErr: "cannot ask the Docker engine for this node's ID: connection refused",
		},
		{
			name:    "helper missing",
			fake:    &fakeDocker{node: "node-a"},
			wantErr: "HELPER_SERVICE helper has no running tasks: create it (global, on the managers) or fix the name",
		},
		{
			name:    "helper service does not exist",
			fake:    &fakeDocker{node: "node-a", tasksErr: fmt.Errorf("service helper: %w", swarm.ErrServiceGone)},
			wantErr: "HELPER_SERVICE helper does not exist: create it (global, on the managers) or fix the name",
		},
		{
			name:    "tasks not listed",
			fake:    &fakeDocker{node: "node-a", tasksErr: errors.New("this node is not a swarm manager")},
			wantErr: "cannot list the tasks of HELPER_SERVICE helper: this node is not a swarm manager",
		},
		{
			name:    "helper not on this node",
			fake:    &fakeDocker{node: "node-b", tasks: running},
			wantErr: "HELPER_SERVICE helper has no running task on this node (node-b): deploy it in global mode on every manager",
		},
		{
			name: "secret not attached to the helper",
			fake: &fakeDocker{node: "node-a", tasks: running,
				read: failing(&swarm.ExitError{Code: 1, Stderr: "cat: can't open '/run/secrets/token': No such file or directory"})},
			wantErr: "cannot read /run/secrets/token in HELPER_SERVICE helper (exit 1: cat: can't open '/run/secrets/token': No such file or directory): attach HELPER_SECRET token to the helper, and use an image with cat",
		},
		{
			name:    "empty secret",
			fake:    &fakeDocker{node: "node-a", tasks: running, file: " \n"},
			wantErr: "/run/secrets/token in HELPER_SERVICE helper is empty",
		},
		{
			name:    "garbage larger than any secret",
			fake:    &fakeDocker{node: "node-a", tasks: running, read: failing(swarm.ErrTooLarge)},
			wantErr: "failed to read /run/secrets/token from the helper's container c1: the helper's secret is larger than 512000 bytes",
		},
		{
			name:    "exec refused",
			fake:    &fakeDocker{node: "node-a", tasks: running, read: failing(errors.New("cannot exec cat: container c1 is not running"))},
			wantErr: "failed to read /run/secrets/token from the helper's container c1: cannot exec cat: container c1 is not running",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(tt.fake, "helper", "token")
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

func TestNewReaderValidates(t *testing.T) {
	for _, tt := range []struct{ service, secret, wantErr string }{
		{"", "s", "HELPER_SERVICE is not set: name the swarm service that holds the plugin's bootstrap secret"},
		{"h", "", "HELPER_SECRET is not set: name the secret, as mounted in the helper service's /run/secrets/, to read"},
		{"h", "../etc/passwd", "HELPER_SECRET=../etc/passwd is not a file name in /run/secrets/"},
		{"h", "..", "HELPER_SECRET=.. is not a file name in /run/secrets/"},
	} {
		if _, err := NewReader(&fakeDocker{}, tt.service, tt.secret); err == nil || err.Error() != tt.wantErr {
			t.Errorf("(%q, %q): error %v, want %s", tt.service, tt.secret, err, tt.wantErr)
		}
	}
}

// A read cut at the deadline (swarm's ReadFile closes the stream) says it
// took too long, not what broke the stream.
func TestAReadCutAtTheDeadlineTookTooLong(t *testing.T) {
	f := helperHolding("")
	f.read = func(ctx context.Context) ([]byte, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("cat did not end: %w", ctx.Err())
	}
	r, err := NewReader(f, "helper", "boot")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = r.Read(ctx)
	if err == nil || !strings.Contains(err.Error(), "reading /run/secrets/boot from the helper's container c took too long") {
		t.Errorf("error %v", err)
	}
}
