package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
)

// What the helper-service bootstrap asks of the engine: this node's ID, the
// tasks of the helper service, and a file read from a container. The
// bootstrap decides what they mean; the errors of NodeID and ServiceTasks
// are the engine's own, for the caller to say what it asked.

// NodeID returns this engine's swarm node ID, or "" when the engine is not
// in swarm mode.
func (e *Engine) NodeID(ctx context.Context) (string, error) {
	info, err := e.docker.Info(ctx)
	if err != nil {
		return "", err
	}
	return info.Swarm.NodeID, nil
}

// ServiceTask is a task of a service: where it runs, and in which
// container.
type ServiceTask struct {
	// Node is the ID of the node the task was given to.
	Node string
	// Running: the node reports the task running, not only starting.
	Running bool
	// Container is the ID of the task's container, "" until its node has
	// made one.
	Container string
}

// ServiceTasks returns the tasks of service (a name or an ID) that swarm
// wants running, whatever state their nodes report; an error wrapping
// ErrServiceGone when there is no such service.
func (e *Engine) ServiceTasks(ctx context.Context, service string) ([]ServiceTask, error) {
	all, err := e.docker.TaskList(ctx, swarmtypes.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", service),
		filters.Arg("desired-state", "running"),
	)})
	if cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("service %s: %w", service, ErrServiceGone)
	}
	if err != nil {
		return nil, err
	}
	out := make([]ServiceTask, 0, len(all))
	for _, t := range all {
		st := ServiceTask{Node: t.NodeID, Running: t.Status.State == swarmtypes.TaskStateRunning}
		if t.Status.ContainerStatus != nil {
			st.Container = t.Status.ContainerStatus.ContainerID
		}
		out = append(out, st)
	}
	return out, nil
}

// ErrTooLarge is ReadFile's answer for a file larger than the limit.
var ErrTooLarge = errors.New("the file is larger than the limit")

// ExitError is ReadFile's answer when cat fails in the container: the file
// is missing or unreadable, or the image has no cat.
type ExitError struct {
	// Code is cat's exit code.
	Code int
	// Stderr is what cat said, trimmed and cut to 1 KiB: it names the file
	// and the cause.
	Stderr string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("cat exited with code %d: %s", e.Code, e.Stderr)
}

// ReadFile returns the content of file in the container, at most limit
// bytes (ErrTooLarge beyond), by running cat in it. It reads by exec, not
// by an archive copy (docker cp): a swarm secret is a tmpfs bind mount the
// archive API does not follow, so a copy of /run/secrets/<name> is empty.
//
// A cat that fails returns an *ExitError; a ctx that ends stops the read.
// Errors never hold what was read, and leave naming the container and the
// file to the caller.
func (e *Engine) ReadFile(ctx context.Context, containerID, file string, limit int) ([]byte, error) {
	exec, err := e.docker.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		Cmd:          []string{"cat", file},
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot exec cat: %w", err)
	}
	att, err := e.docker.ContainerExecAttach(ctx, exec.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("cannot attach to the exec: %w", err)
	}
	defer att.Close()
	// The attached stream is a hijacked connection, which ignores ctx: close
	// it when ctx ends, or a cat that never exits would hold the caller.
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()

	var stdout, stderr bytes.Buffer
	// Without a TTY the stream is multiplexed: stdcopy splits it. stderr
	// only has to name cat's complaint; more is dropped.
	if _, err := stdcopy.StdCopy(&limitWriter{w: &stdout, n: limit}, &truncWriter{w: &stderr, n: maxStderr}, att.Reader); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cat did not end: %w", ctx.Err())
		}
		return nil, err
	}
	res, err := e.docker.ContainerExecInspect(ctx, exec.ID)
	if err != nil {
		return nil, fmt.Errorf("cannot inspect the exec: %w", err)
	}
	if res.ExitCode != 0 {
		return nil, &ExitError{Code: res.ExitCode, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// limitWriter fails with ErrTooLarge once more than n bytes are written.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, ErrTooLarge
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// maxStderr bounds what is kept of cat's stderr: it ends up in a log line.
const maxStderr = 1024

// truncWriter keeps the first n bytes written and drops the rest.
type truncWriter struct {
	w io.Writer
	n int
}

func (t *truncWriter) Write(p []byte) (int, error) {
	if keep := min(len(p), t.n); keep > 0 {
		t.n -= keep
		if _, err := t.w.Write(p[:keep]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
