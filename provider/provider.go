package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
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
	// Policies renders each task's policies (POLICY_TEMPLATE).
	Policies *PolicyTemplate
	// TokenRole, when set, is the token role every task token is made
	// through (TOKEN_ROLE).
	TokenRole string
	// TokenTTL is a vault.type=token token's TTL when the secret asks for
	// none (TOKEN_TTL); TokenMaxTTL caps what a secret may ask, and how long
	// the task may renew it (TOKEN_MAX_TTL).
	TokenTTL, TokenMaxTTL time.Duration
	// WrapTTL is the wrapping TTL of vault.wrap=true (WRAP_TTL), and
	// WrapMaxTTL the longest a vault.wrap=<ttl> label may ask
	// (WRAP_MAX_TTL): a wrapping token is a bearer credential for the
	// value until it is unwrapped or expires.
	WrapTTL, WrapMaxTTL time.Duration
	// ReuseCacheTTL is how long a vault.reuse=true secret's value is kept
	// (REUSE_CACHE_TTL); 0 keeps none (identical concurrent reads are
	// still shared). The plugin's default is DefaultReuseCacheTTL.
	ReuseCacheTTL time.Duration
	// ReadTokenTTL is the TTL of the batch token that reads for a task.
	// Default: ReadTokenTTL(Timeout).
	ReadTokenTTL time.Duration
	// Reauth, when set, is asked to log the plugin in again when Vault
	// calls its token invalid.
	Reauth Reauther
	// AllowedTypes are the vault.type values this install serves
	// (ALLOWED_TYPES); nil serves all.
	AllowedTypes []Type
	// Tracker, when set, refuses repeated fetches and records issued
	// credentials for the task lifecycle.
	Tracker Tracker
	// Observer, when set, is told how each request ended (metrics).
	Observer Observer
	// Rotation says a rotator runs (it needs the Docker socket), and
	// Lifecycle that the leader loop renews credentials (the socket and
	// STATE_PATH): without what a vault.rotate secret needs, it is served
	// with a warning that nothing will roll its services.
	Rotation, Lifecycle bool
}

// AllTypes are the vault.type values, in the order errors list them.
var AllTypes = []Type{TypeKV, TypeRead, TypeWrite, TypeToken}

// ParseAllowedTypes parses ALLOWED_TYPES, a comma-separated list of
// vault.type values; empty means all.
func ParseAllowedTypes(list string) ([]Type, error) {
	if strings.TrimSpace(list) == "" {
		return AllTypes, nil
	}
	var out []Type
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains(AllTypes, Type(t)) {
			return nil, fmt.Errorf("ALLOWED_TYPES=%s names %s, which is not a vault.type: use a comma list of kv, read, write and token", list, strconv.Quote(t))
		}
		if !slices.Contains(out, Type(t)) {
			out = append(out, Type(t))
		}
	}
	return out, nil
}

// Reauther logs the plugin in again. refused is the token Vault refused:
// if the plugin holds another one already, there is nothing to do.
type Reauther interface {
	Reauth(ctx context.Context, refused string) error
}

// Default option values.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMountCacheTTL = 5 * time.Minute
	DefaultTokenTTL      = time.Hour
	DefaultTokenMaxTTL   = 24 * time.Hour
	DefaultWrapTTL       = 5 * time.Minute
	// DefaultWrapMaxTTL leaves a task that is slow to start (an image to
	// pull, a restart delay) twelve times WRAP_TTL to unwrap, and bounds
	// how long a wrapping token that leaked from a secret file, a backup
	// or a log stays usable to an hour, not however long a label asks.
	DefaultWrapMaxTTL = time.Hour
)

// ReadTokenTTL is the default TTL of a read token for a request deadline:
// it only has to outlive the request.
func ReadTokenTTL(timeout time.Duration) time.Duration { return 2 * timeout }

func (o *Options) setDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MountCacheTTL <= 0 {
		o.MountCacheTTL = DefaultMountCacheTTL
	}
	if o.Policies == nil {
		o.Policies, _ = ParsePolicyTemplate(DefaultPolicyTemplate)
	}
	if o.TokenTTL <= 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.TokenMaxTTL <= 0 {
		o.TokenMaxTTL = DefaultTokenMaxTTL
	}
	if o.WrapTTL <= 0 {
		o.WrapTTL = DefaultWrapTTL
	}
	if o.WrapMaxTTL <= 0 {
		o.WrapMaxTTL = DefaultWrapMaxTTL
	}
	if o.ReadTokenTTL <= 0 {
		o.ReadTokenTTL = ReadTokenTTL(o.Timeout)
	}
}

// Provider answers secret requests from Vault. Its own token only mints a
// token per task; every read for a task is made with that task's token.
type Provider struct {
	vault  *api.Client
	opts   Options
	mounts *vaultkv.Cache
	// readTokens keeps the read tokens of vault.reuse=true secrets, one
	// per policy set; taskReads one per task and policy set.
	readTokens, taskReads *tokenCache
	reused                *reuseCache
	// sources keeps a task's source answers for its other secrets.
	sources *sourceCache
	// own caches the plugin token's own policies, which no minted token
	// may carry.
	own *ownPolicyCache
	log logrus.FieldLogger
}

// New returns a Provider whose client carries the address, TLS settings and
// the plugin's own token.
func New(client *api.Client, log logrus.FieldLogger, opts Options) *Provider {
	opts.setDefaults()
	return &Provider{
		vault:      client,
		opts:       opts,
		mounts:     vaultkv.NewCache(opts.MountCacheTTL, nil),
		readTokens: newTokenCache(),
		taskReads:  newTokenCache(),
		reused:     newReuseCache(opts.ReuseCacheTTL),
		own:        newOwnPolicyCache(),
		sources:    newSourceCache(ReadTokenTTL(opts.Timeout)),
		log:        log,
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
	var plan Plan
	outcome := OutcomeOK
	defer func() {
		// Nothing on the request path may take the plugin down: the engine
		// would fail every secret of every task until it is restarted.
		if r := recover(); r != nil {
			entry.WithField("stack", string(debug.Stack())).Errorf("internal error: %v", r)
			resp = secrets.Response{Err: fmt.Sprintf("swarmvault internal error serving secret %s: see the plugin log", req.SecretName), DoNotReuse: true}
			outcome = OutcomeInternal
		}
		if p.opts.Observer != nil {
			p.opts.Observer.Request(string(plan.Type), outcome, time.Since(start))
		}
	}()
	fail := func(err error) secrets.Response {
		outcome = OutcomeOf(err)
		return p.fail(entry, req, err)
	}

	plan, policies, err := p.Check(req)
	if plan.Path != "" {
		entry = entry.WithField("path", plan.Path)
	}
	if err != nil {
		return fail(err)
	}
	entry = entry.WithField("policies", strings.Join(policies, ","))

	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	value, err := p.value(ctx, req, plan, policies)
	if err != nil {
		return fail(err)
	}
	switch {
	case plan.Rotate && !p.opts.Rotation:
		entry.Warnf("label %s=true, but rotation needs the Docker socket: docker plugin set <plugin> docker-socket.source=/var/run/docker.sock", LabelRotate)
	case plan.Rotate && plan.Type != TypeKV && !p.opts.Lifecycle:
		entry.Warnf("label %s=true, but rotating a %s=%s secret needs the task lifecycle: docker plugin set <plugin> STATE_PATH=<kv path>", LabelRotate, LabelType, plan.Type)
	}
	if entry.Logger.IsLevelEnabled(logrus.InfoLevel) {
		logDelivered(entry, plan, start)
	}
	// DoNotReuse by default: without it Swarm keeps one value per node and a
	// later task's fetch overwrites it, so per-task values would be shared.
	return secrets.Response{Value: value, DoNotReuse: !plan.Reuse}
}

// Check is what a request is decided on before any Vault call: the secret's
// labels, ALLOWED_TYPES and POLICY_TEMPLATE. It returns the plan and the
// policies the task's tokens get; swarmvault check runs it on compose files.
// An error is classified (OutcomeOf) and its text is for Message.
func (p *Provider) Check(req Request) (Plan, []string, error) {
	plan, err := p.CheckLabels(req.SecretLabels)
	if err != nil {
		return plan, nil, err
	}
	policies, err := p.opts.Policies.Policies(req)
	if err != nil {
		return plan, nil, classify(err, OutcomeConfig)
	}
	if err := p.checkTokenRender(plan, policies); err != nil {
		return plan, nil, classify(err, OutcomeLabel)
	}
	return plan, policies, nil
}

// CheckLabels is the part of Check that depends on the secret alone: its
// labels, ALLOWED_TYPES and WRAP_MAX_TTL.
func (p *Provider) CheckLabels(labels map[string]string) (Plan, error) {
	plan, err := ParsePlan(labels)
	if err != nil {
		return Plan{}, classify(err, OutcomeLabel)
	}
	if p.opts.AllowedTypes != nil && !slices.Contains(p.opts.AllowedTypes, plan.Type) {
		return plan, classify(fmt.Errorf("%s=%s is not served by this plugin (ALLOWED_TYPES=%s): use one of those types, or ask the operator to allow it", LabelType, plan.Type, joinTypes(p.opts.AllowedTypes)), OutcomeConfig)
	}
	if plan.WrapTTL > p.opts.WrapMaxTTL {
		return plan, classify(fmt.Errorf("label %s=%s is longer than WRAP_MAX_TTL=%s: ask for at most %s, or ask the operator to raise WRAP_MAX_TTL (%s)", LabelWrap, plan.WrapTTL, p.opts.WrapMaxTTL, p.opts.WrapMaxTTL, plan.where()), OutcomeLabel)
	}
	return plan, nil
}

// value admits the request (Tracker) and gets the secret's value. A
// vault.reuse=true value still kept is given at once: giving it again costs
// nothing, so there is no need to ask whether the task holds it already.
func (p *Provider) value(ctx context.Context, req Request, plan Plan, policies []string) ([]byte, error) {
	if plan.Reuse {
		if v, ok := p.reused.cached(req.SecretLabels, policies); ok {
			return v, nil
		}
	}
	if err := p.admit(ctx, req, plan); err != nil {
		return nil, err
	}
	// Another secret of the task from the same source was served a moment
	// ago: this one selects from the same answer (sources.go).
	source := sourceKey(req, plan, policies)
	if data, ok := p.sources.answer(source); ok {
		return p.finish(ctx, data, plan)
	}
	switch plan.Type {
	case TypeToken:
		return p.tokenValue(ctx, req, plan, policies, source)
	case TypeRead, TypeWrite:
		return p.logicalValue(ctx, req, plan, policies, source)
	}
	if plan.Reuse {
		return p.reused.readThrough(ctx, req.SecretLabels, policies, p.opts.Timeout, func(ctx context.Context) ([]byte, error) {
			return p.kvValue(ctx, req, plan, policies, "")
		})
	}
	return p.kvValue(ctx, req, plan, policies, source)
}

func joinTypes(types []Type) string {
	s := make([]string, len(types))
	for i, t := range types {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

func logDelivered(entry *logrus.Entry, plan Plan, start time.Time) {
	entry.WithFields(logrus.Fields{
		"type":     plan.Type,
		"wrapped":  plan.Wrap,
		"format":   plan.Format,
		"reuse":    plan.Reuse,
		"duration": time.Since(start).Round(time.Microsecond).String(),
	}).Info("secret delivered")
}

// kvValue reads a KV secret with a batch token minted for this task alone
// and kept for the task's other secrets (the engine asks for them one after
// the other), or, for a vault.reuse=true secret, one shared by the
// requests with the same policies: Swarm gives such a value to every task
// of the node anyway, so a token per task would only cost a round trip.
func (p *Provider) kvValue(ctx context.Context, req Request, plan Plan, policies []string, source string) ([]byte, error) {
	// At most two tries: the second only when a kept token turned out to
	// be dead (the plugin's token, its parent, was revoked or replaced).
	for try := 0; ; try++ {
		client, cached, err := p.readClient(ctx, req, policies, plan.Reuse, try == 0)
		if err != nil {
			return nil, err
		}
		value, err := p.readKV(ctx, client, plan, source)
		if cached && errors.Is(err, errInvalidToken) {
			p.dropReadClient(req, policies, plan.Reuse)
			continue
		}
		return value, err
	}
}

// readKey is where readClient keeps a read token: per policy set when
// shared, else per task and policy set (a POLICY_TEMPLATE with
// .SecretName gives one task several). "" keeps none: a request without a
// task ID (none comes from the engine) gets a token of its own.
func (p *Provider) readKey(req Request, policies []string, shared bool) (*tokenCache, string) {
	switch {
	case shared:
		return p.readTokens, joinKey(policies...)
	case req.TaskID == "":
		return p.taskReads, ""
	}
	return p.taskReads, joinKey(req.TaskID, joinKey(policies...))
}

// readClient returns a client that reads with a batch token of policies,
// kept for half the TTL Vault granted (see readKey for whom): with
// fromCache, a kept one if there is one (cached says so).
func (p *Provider) readClient(ctx context.Context, req Request, policies []string, shared, fromCache bool) (client *api.Client, cached bool, err error) {
	cache, key := p.readKey(req, policies, shared)
	if fromCache && key != "" {
		if client, ok := cache.get(key); ok {
			return client, true, nil
		}
	}
	kind := readToken
	if shared {
		kind = sharedReadToken
	}
	s, err := p.mint(ctx, req, policies, kind, p.opts.ReadTokenTTL, 0)
	if err != nil {
		return nil, false, err
	}
	if client, err = p.withToken(s.Auth.ClientToken); err != nil {
		return nil, false, err
	}
	if key != "" {
		// Half the TTL Vault granted, which may be less than asked: a
		// request that takes the token near its end still has time.
		cache.put(key, client, time.Duration(s.Auth.LeaseDuration)*time.Second/2)
	}
	return client, false, nil
}

func (p *Provider) dropReadClient(req Request, policies []string, shared bool) {
	if cache, key := p.readKey(req, policies, shared); key != "" {
		cache.drop(key)
	}
}

// taskTokenFor mints an orphan service token for the task: the token a
// vault.type=token secret hands over, or the one a read or write is made
// with, whose leases (dynamic credentials) end when it does. Its policies are
// the task's, or the subset vault.token.policies names; its TTL is
// vault.token.ttl or TOKEN_TTL, capped by TOKEN_MAX_TTL. With wrapTTL > 0 the
// token comes wrapped (only WrapInfo is set).
func (p *Provider) taskTokenFor(ctx context.Context, req Request, plan Plan, policies []string, wrapTTL time.Duration) (*api.Secret, error) {
	asked := policies
	if plan.TokenPolicies != nil {
		if extra, ok := subset(plan.TokenPolicies, policies); !ok {
			return nil, fmt.Errorf("label %s asks for policy %s, which POLICY_TEMPLATE does not give service %s (it gives: %s)",
				LabelTokenPolicies, quote(extra), req.ServiceName, strings.Join(policies, ", "))
		}
		asked = plan.TokenPolicies
	}
	return p.mint(ctx, req, asked, taskToken, p.taskTokenTTL(plan), wrapTTL)
}

// taskTokenTTL is the TTL a task token is asked for: vault.token.ttl or
// TOKEN_TTL, capped by TOKEN_MAX_TTL.
func (p *Provider) taskTokenTTL(plan Plan) time.Duration {
	ttl := plan.TokenTTL
	if ttl == 0 {
		ttl = p.opts.TokenTTL
	}
	return min(ttl, p.opts.TokenMaxTTL)
}

// tokenValue is a vault.type=token secret: a token for the task, or, with
// vault.wrap, the token create's own answer wrapped. A token minted for a
// value that then fails (or panics) is revoked, and only a delivered one is
// told to the Tracker: nothing else would ever end it.
func (p *Provider) tokenValue(ctx context.Context, req Request, plan Plan, policies []string, source string) ([]byte, error) {
	var wrapTTL time.Duration
	if plan.WrapsAtSource() {
		wrapTTL = p.wrapTTL(plan)
	}
	s, err := p.taskTokenFor(ctx, req, plan, policies, wrapTTL)
	if err != nil {
		return nil, err
	}
	var issued Credentials
	var value []byte
	if plan.WrapsAtSource() {
		// The plugin never sees a wrapped token, only its accessor; its TTL
		// is the one asked for (Vault caps it at TOKEN_MAX_TTL too).
		issued = Credentials{Accessor: s.WrapInfo.WrappedAccessor, TokenTTL: p.taskTokenTTL(plan), Rotate: plan.Rotate}
	} else {
		issued = Credentials{Accessor: s.Auth.Accessor, TokenTTL: time.Duration(s.Auth.LeaseDuration) * time.Second, Rotate: plan.Rotate}
	}
	delivered := false
	defer func() {
		if !delivered {
			p.revokeQuietly(issued.Accessor, "a task token whose secret could not be made")
		}
	}()
	var data map[string]any
	if plan.WrapsAtSource() {
		value, err = wrapToken(s, plan.where())
	} else {
		data = tokenData(s.Auth.ClientToken, s.Auth.Accessor, s.Auth.Policies, s.Auth.LeaseDuration)
		value, err = p.finish(ctx, data, plan)
	}
	if err != nil {
		return nil, err
	}
	if err := p.track(ctx, req, issued); err != nil {
		return nil, err
	}
	delivered = true
	p.sources.keep(source, data)
	return value, nil
}

// tokenData is what a vault.type=token secret's vault.field and
// vault.template select from.
func tokenData(token, accessor string, policies []string, ttl int) map[string]any {
	return map[string]any{"token": token, "accessor": accessor, "policies": policies, "ttl": ttl}
}

// checkTokenRender renders a vault.type=token secret over a stand-in of
// the token Vault will give (the policies asked, with default, as Vault
// adds it; the TTL asked): a field the answer lacks (vault.field=tokne) or
// a template that fails on it is refused before a token is minted, and
// swarmvault check says so offline.
func (p *Provider) checkTokenRender(plan Plan, policies []string) error {
	if plan.Type != TypeToken || plan.WrapsAtSource() {
		return nil
	}
	asked := policies
	if plan.TokenPolicies != nil {
		asked = plan.TokenPolicies
	}
	standIn := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(asked), "default"))))
	_, err := render(tokenData("hvs.stand-in", "stand-in", standIn, int(p.taskTokenTTL(plan).Seconds())), plan)
	return err
}

// logicalValue is a vault.type=read or write secret: what `vault read` or
// `vault write` with vault.param.* gives, read with a token of the task's.
// That token is not revoked after the request: a dynamic secret's lease
// ends with it. It is when the read fails, since nothing will use it.
func (p *Provider) logicalValue(ctx context.Context, req Request, plan Plan, policies []string, source string) (value []byte, err error) {
	s, err := p.taskTokenFor(ctx, req, plan, policies, 0)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.revokeQuietly(s.Auth.Accessor, "the token of a failed read or write")
		}
	}()
	client, err := p.withToken(s.Auth.ClientToken)
	if err != nil {
		return nil, err
	}
	if plan.WrapsAtSource() {
		if client, err = wrapping(client, p.wrapTTL(plan)); err != nil {
			return nil, err
		}
	}
	var out *api.Secret
	if plan.Type == TypeWrite {
		body := map[string]any{}
		for k, v := range plan.Params {
			body[k] = v
		}
		out, err = client.Logical().WriteWithContext(ctx, plan.Path, body)
	} else {
		out, err = client.Logical().ReadWithDataWithContext(ctx, plan.Path, plan.query())
	}
	if err != nil {
		return nil, vaultErrorDoing(err, string(plan.Type), plan.Path, plan.Path)
	}
	issued := Credentials{Accessor: s.Auth.Accessor, TokenTTL: time.Duration(s.Auth.LeaseDuration) * time.Second, Rotate: plan.Rotate}
	if plan.WrapsAtSource() {
		// The lease is inside the wrapped answer: revoking the token ends
		// it, but only the task can renew it.
		value, err = wrapToken(out, plan.where())
	} else if out == nil || out.Data == nil {
		return nil, fmt.Errorf("Vault gives no data at path %s (%s=%s): check label %s", plan.Path, LabelType, plan.Type, LabelPath)
	} else {
		issued.LeaseID, issued.LeaseTTL, issued.LeaseRenewable = out.LeaseID, time.Duration(out.LeaseDuration)*time.Second, out.Renewable
		issued.Expires = expiration(out.Data)
		// Without a lease or an expiration the token's end changes nothing
		// for the task: a vault.rotate read of a static value rolls when
		// the value changes (the rotator's hash), not when the token ends.
		issued.Rotate = plan.Rotate && (out.LeaseID != "" || !issued.Expires.IsZero())
		value, err = p.finish(ctx, out.Data, plan)
	}
	if err != nil {
		return nil, err
	}
	if err := p.track(ctx, req, issued); err != nil {
		return nil, err
	}
	if out != nil {
		p.sources.keep(source, out.Data)
	}
	return value, nil
}

// Message is the sentence the plugin answers and logs when secret fails
// with err: one line, bounded, naming what to fix.
func Message(secret string, err error) string {
	return oneLine(fmt.Sprintf("secret %s: %s", secret, vaultkv.ErrorText(err)))
}

func (p *Provider) fail(entry *logrus.Entry, req Request, err error) secrets.Response {
	msg := Message(req.SecretName, err)
	if errors.Is(err, ErrRefetch) {
		// Expected during every failover and node reconnect: at error
		// level it would read as an outage.
		entry.Info(msg)
	} else {
		entry.Error(msg)
	}
	return secrets.Response{Err: msg, DoNotReuse: true}
}

// expiration is the expiration a pki/issue or pki/sign answer gives
// (Unix seconds), or zero.
func expiration(data map[string]any) time.Time {
	var secs int64
	switch v := data["expiration"].(type) {
	case json.Number:
		secs, _ = v.Int64()
	case float64:
		secs = int64(v)
	}
	if secs <= 0 {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}
