// The helper-service bootstrap: a managed plugin cannot be given swarm
// secrets of its own, so an operator runs a small helper service (global, on
// the managers) that holds the bootstrap credential as an ordinary swarm
// secret. The plugin finds the helper's running task on its own node and
// reads /run/secrets/<name> from that container. It reads by exec: an
// archive copy (docker cp) returns an empty file, because the secret is a
// tmpfs bind mount the archive API does not follow.

package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
)

// maxSecretSize bounds what is read from the helper; swarm refuses larger
// secrets anyway, so more means the helper is not what it should be.
const maxSecretSize = 500 * 1024

// HelperReader reads one secret from the helper service's task on this node.
type HelperReader struct {
	docker  DockerAPI
	service string
	secret  string
}

// NewHelperReader validates the settings HELPER_SERVICE and HELPER_SECRET.
func NewHelperReader(docker DockerAPI, service, secret string) (*HelperReader, error) {
	switch {
	case service == "":
		return nil, errors.New("HELPER_SERVICE is not set: name the swarm service that holds the plugin's bootstrap secret")
	case secret == "":
		return nil, errors.New("HELPER_SECRET is not set: name the secret, as mounted in the helper service's /run/secrets/, to read")
	case strings.ContainsAny(secret, "/\x00") || secret == "." || secret == "..":
		return nil, fmt.Errorf("HELPER_SECRET=%s is not a file name in /run/secrets/", secret)
	}
	return &HelperReader{docker: docker, service: service, secret: secret}, nil
}

// Read returns the helper's secret, surrounding white space trimmed. Errors
// say which of the helper's states is wrong; none quotes what was read.
func (r *HelperReader) Read(ctx context.Context) ([]byte, error) {
	info, err := r.docker.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot ask the Docker engine for this node's ID: %w", err)
	}
	node := info.Swarm.NodeID
	if node == "" {
		return nil, errors.New("this Docker engine is not a swarm node: the helper service bootstrap needs swarm mode")
	}
	cid, err := r.helperContainer(ctx, node)
	if err != nil {
		return nil, err
	}
	return r.cat(ctx, cid)
}

// helperContainer finds the container of the helper's running task on node.
func (r *HelperReader) helperContainer(ctx context.Context, node string) (string, error) {
	all, err := r.docker.TaskList(ctx, swarmtypes.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", r.service),
		filters.Arg("desired-state", "running"),
	)})
	if cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("HELPER_SERVICE %s does not exist: create it (global, on the managers) or fix the name", r.service)
	}
	if err != nil {
		return "", fmt.Errorf("cannot list the tasks of HELPER_SERVICE %s: %w", r.service, err)
	}
	if len(all) == 0 {
		return "", fmt.Errorf("HELPER_SERVICE %s has no running tasks: create it (global, on the managers) or fix the name", r.service)
	}
	for _, t := range all {
		if t.NodeID != node || t.Status.State != swarmtypes.TaskStateRunning || t.Status.ContainerStatus == nil {
			continue
		}
		if id := t.Status.ContainerStatus.ContainerID; id != "" {
			return id, nil
		}
	}
	return "", fmt.Errorf("HELPER_SERVICE %s has no running task on this node (%s): deploy it in global mode on every manager", r.service, node)
}

// cat runs `cat /run/secrets/<secret>` in the helper's container.
func (r *HelperReader) cat(ctx context.Context, cid string) ([]byte, error) {
	file := path.Join("/run/secrets", r.secret)
	exec, err := r.docker.ContainerExecCreate(ctx, cid, container.ExecOptions{
		Cmd:          []string{"cat", file},
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot exec in the helper's container %.12s: %w", cid, err)
	}
	att, err := r.docker.ContainerExecAttach(ctx, exec.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("cannot attach to exec in the helper's container %.12s: %w", cid, err)
	}
	defer att.Close()
	// The attached stream is a hijacked connection, which ignores ctx: close
	// it when ctx ends, or a cat that never exits would hold the login.
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()

	var stdout, stderr bytes.Buffer
	// Without a TTY the stream is multiplexed: stdcopy splits it. stderr
	// only has to name cat's complaint; more is dropped.
	if _, err := stdcopy.StdCopy(&limitWriter{w: &stdout, n: maxSecretSize}, &truncWriter{w: &stderr, n: maxStderr}, att.Reader); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading %s from the helper's container %.12s took too long: %w", file, cid, ctx.Err())
		}
		return nil, fmt.Errorf("failed to read %s from the helper's container %.12s: %w", file, cid, err)
	}
	res, err := r.docker.ContainerExecInspect(ctx, exec.ID)
	if err != nil {
		return nil, fmt.Errorf("cannot inspect exec in the helper's container %.12s: %w", cid, err)
	}
	if res.ExitCode != 0 {
		// stderr of cat names the file and the cause; it holds no secret.
		return nil, fmt.Errorf("cannot read %s in HELPER_SERVICE %s (exit %d: %s): attach HELPER_SECRET %s to the helper, and use an image with cat",
			file, r.service, res.ExitCode, strings.TrimSpace(stderr.String()), r.secret)
	}
	value := bytes.TrimSpace(stdout.Bytes())
	if len(value) == 0 {
		return nil, fmt.Errorf("%s in HELPER_SERVICE %s is empty", file, r.service)
	}
	return value, nil
}

// limitWriter fails once more than n bytes are written.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("the helper's secret is larger than %d bytes", maxSecretSize)
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// maxStderr bounds what is kept of cat's stderr in the helper.
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
