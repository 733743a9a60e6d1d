package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/swarmvault/swarmvault/swarm"
)

// Docker is what the bootstrap asks of this node's Docker engine;
// *swarm.Engine implements it.
type Docker interface {
	// NodeID is this engine's swarm node ID, "" outside swarm mode.
	NodeID(ctx context.Context) (string, error)
	// ServiceTasks are the tasks swarm wants running of service; the error
	// wraps swarm.ErrServiceGone when there is no such service.
	ServiceTasks(ctx context.Context, service string) ([]swarm.ServiceTask, error)
	// ReadFile reads file in the container, failing with swarm.ErrTooLarge
	// beyond limit bytes and with a *swarm.ExitError when cat fails.
	ReadFile(ctx context.Context, containerID, file string, limit int) ([]byte, error)
}

var _ Docker = (*swarm.Engine)(nil)

// maxSecretSize bounds what is read from the helper; swarm refuses larger
// secrets anyway, so more means the helper is not what it should be.
const maxSecretSize = 500 * 1024

// Reader reads the helper service's secret from its task on this node.
type Reader struct {
	docker  Docker
	service string
	secret  string
}

// NewReader validates the settings HELPER_SERVICE (service) and
// HELPER_SECRET (secret, a file name in the helper's /run/secrets/).
func NewReader(docker Docker, service, secret string) (*Reader, error) {
	switch {
	case service == "":
		return nil, errors.New("HELPER_SERVICE is not set: name the swarm service that holds the plugin's bootstrap secret")
	case secret == "":
		return nil, errors.New("HELPER_SECRET is not set: name the secret, as mounted in the helper service's /run/secrets/, to read")
	case strings.ContainsAny(secret, "/\x00") || secret == "." || secret == "..":
		return nil, fmt.Errorf("HELPER_SECRET=%s is not a file name in /run/secrets/", secret)
	}
	return &Reader{docker: docker, service: service, secret: secret}, nil
}

// Read returns the helper's secret, surrounding white space trimmed. Errors
// say which of the helper's states is wrong; none quotes what was read.
func (r *Reader) Read(ctx context.Context) ([]byte, error) {
	node, err := r.docker.NodeID(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot ask the Docker engine for this node's ID: %w", err)
	}
	if node == "" {
		return nil, errors.New("this Docker engine is not a swarm node: the helper service bootstrap needs swarm mode")
	}
	cid, err := r.container(ctx, node)
	if err != nil {
		return nil, err
	}
	return r.cat(ctx, cid)
}

// container finds the container of the helper's running task on node.
func (r *Reader) container(ctx context.Context, node string) (string, error) {
	tasks, err := r.docker.ServiceTasks(ctx, r.service)
	if errors.Is(err, swarm.ErrServiceGone) {
		return "", fmt.Errorf("HELPER_SERVICE %s does not exist: create it (global, on the managers) or fix the name", r.service)
	}
	if err != nil {
		return "", fmt.Errorf("cannot list the tasks of HELPER_SERVICE %s: %w", r.service, err)
	}
	if len(tasks) == 0 {
		return "", fmt.Errorf("HELPER_SERVICE %s has no running tasks: create it (global, on the managers) or fix the name", r.service)
	}
	for _, t := range tasks {
		if t.Node == node && t.Running && t.Container != "" {
			return t.Container, nil
		}
	}
	return "", fmt.Errorf("HELPER_SERVICE %s has no running task on this node (%s): deploy it in global mode on every manager", r.service, node)
}

// cat reads /run/secrets/<secret> in the helper's container.
func (r *Reader) cat(ctx context.Context, cid string) ([]byte, error) {
	file := path.Join("/run/secrets", r.secret)
	out, err := r.docker.ReadFile(ctx, cid, file, maxSecretSize)
	var exit *swarm.ExitError
	switch {
	case errors.As(err, &exit):
		// cat's stderr names the file and the cause; it holds no secret.
		return nil, fmt.Errorf("cannot read %s in HELPER_SERVICE %s (exit %d: %s): attach HELPER_SECRET %s to the helper, and use an image with cat",
			file, r.service, exit.Code, exit.Stderr, r.secret)
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("reading %s from the helper's container %.12s took too long: %w", file, cid, ctx.Err())
	case errors.Is(err, swarm.ErrTooLarge):
		return nil, fmt.Errorf("failed to read %s from the helper's container %.12s: the helper's secret is larger than %d bytes", file, cid, maxSecretSize)
	case err != nil:
		return nil, fmt.Errorf("failed to read %s from the helper's container %.12s: %w", file, cid, err)
	}
	value := bytes.TrimSpace(out)
	if len(value) == 0 {
		return nil, fmt.Errorf("%s in HELPER_SERVICE %s is empty", file, r.service)
	}
	return value, nil
}
