// Package provider serves Swarm's secretprovider interface: it turns the
// labels of a driver secret into a validated plan, reads Vault, and answers
// the engine with the value or with one sentence saying what to fix.
//
// It is the only place where an error becomes Response.Err, and it logs one
// entry per request outcome, never a value or token.
package provider

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

// Request is what the engine sends to /SecretProvider.GetSecret.
type Request struct {
	secrets.Request
	// NodeID is sent by the engine (swarmkit's dispatcher) but has no field
	// in go-plugins-helpers' secrets.Request.
	NodeID string `json:",omitempty"`
}

// Options tune a Provider. The zero value of each field means its default.
type Options struct {
	// Timeout bounds all Vault calls of one request. The engine may wait on
	// the plugin with no deadline at all, and a slow answer holds up every
	// task of that node, so the plugin sets its own.
	Timeout time.Duration
	// MountCacheTTL is how long a mount's KV version is remembered.
	MountCacheTTL time.Duration
}

// Default option values.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMountCacheTTL = 5 * time.Minute
)

// Provider answers secret requests from Vault.
type Provider struct {
	vault   *api.Client
	timeout time.Duration
	mounts  *mountCache
	log     logrus.FieldLogger
}

// New returns a Provider that reads Vault through client, which carries the
// address, TLS settings and the token to read with.
func New(client *api.Client, log logrus.FieldLogger, opts Options) *Provider {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MountCacheTTL <= 0 {
		opts.MountCacheTTL = DefaultMountCacheTTL
	}
	return &Provider{
		vault:   client,
		timeout: opts.Timeout,
		mounts:  newMountCache(opts.MountCacheTTL),
		log:     log,
	}
}

// GetSecret answers one request. A failure is returned in Response.Err and
// logged at error level with the same text: the dispatcher logs it only at
// debug level, so the plugin's own line is what an operator sees.
func (p *Provider) GetSecret(ctx context.Context, req Request) (resp secrets.Response) {
	start := time.Now()
	entry := p.log.WithFields(logrus.Fields{
		"secret":  req.SecretName,
		"service": req.ServiceName,
		"task_id": req.TaskID,
		"node_id": req.NodeID,
	})
	defer func() {
		// Nothing on the request path may take the plugin down: the engine
		// would fail every secret of every task until it is restarted.
		if r := recover(); r != nil {
			entry.WithField("stack", string(debug.Stack())).Errorf("internal error: %v", r)
			resp = secrets.Response{Err: fmt.Sprintf("swarmvault internal error serving secret %s: see the plugin log", req.SecretName), DoNotReuse: true}
		}
	}()

	plan, err := ParsePlan(req.SecretLabels)
	if err != nil {
		return p.fail(entry, req, err)
	}
	entry = entry.WithField("path", plan.Path)

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	data, err := p.readKV(ctx, p.vault, plan)
	if err != nil {
		return p.fail(entry, req, err)
	}
	value, err := render(data, plan)
	if err != nil {
		return p.fail(entry, req, err)
	}

	entry.WithFields(logrus.Fields{
		"format":   plan.Format,
		"reuse":    plan.Reuse,
		"duration": time.Since(start).Round(time.Microsecond).String(),
	}).Info("secret delivered")
	// DoNotReuse by default: without it Swarm keeps one value per node and a
	// later task's fetch overwrites it, so per-task values would be shared.
	return secrets.Response{Value: value, DoNotReuse: !plan.Reuse}
}

func (p *Provider) fail(entry *logrus.Entry, req Request, err error) secrets.Response {
	msg := fmt.Sprintf("secret %s: %v", req.SecretName, err)
	entry.Error(msg)
	return secrets.Response{Err: msg, DoNotReuse: true}
}
