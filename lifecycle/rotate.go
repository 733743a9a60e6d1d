package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

// DefaultRotationInterval is ROTATION_INTERVAL's default: how long a new
// value may wait in Vault before its services roll. A round costs a few
// local Docker calls and, per rotating secret and service, one Vault read.
const DefaultRotationInterval = time.Minute

// Versions tells a secret's current version in Vault, as a service's tasks
// read it, and which requests read the same (one scope: the same path with
// the same policies); *provider.Provider implements it.
type Versions interface {
	CurrentVersion(ctx context.Context, req provider.Request) (provider.Version, error)
	ReadScope(req provider.Request) (string, error)
	// Fingerprint is the keyed hash of a KV v1 secret's value, which has
	// no version.
	Fingerprint(ctx context.Context, req provider.Request, key []byte) (string, error)
	// ForgetReused drops what the request path keeps of a vault.reuse
	// secret's value, so that the rolled tasks read the new one.
	ForgetReused(labels map[string]string)
}

// RotationSwarm is what rotation asks of the Docker engine; *swarm.Engine
// implements it.
type RotationSwarm interface {
	PluginName(ctx context.Context) (string, error)
	RotatingSecrets(ctx context.Context, plugin string, labels ...string) ([]swarm.Secret, error)
	ServicesUsing(ctx context.Context, secretIDs []string) ([]swarm.Service, error)
}

// Rotator rolls the services that use a vault.rotate secret whose value
// changed in Vault, for as long as a term of this manager's lead lasts
// (Watcher): a forced rolling update, as the service's own update_config
// says, whose new tasks fetch the new value as any task does. No value is
// ever written to the swarm.
type Rotator struct {
	swarm    RotationSwarm
	vault    Versions
	rollouts *Rollouts
	log      logrus.FieldLogger
	now      func() time.Time
	// Interval is ROTATION_INTERVAL; Timeout bounds each call.
	Interval, Timeout time.Duration
	// State is STATE_PATH, where the hashes of KV v1 and static read
	// values are kept; nil without it (then those do not rotate). Reads
	// tells static reads from credentials (the Tracker, which needs
	// STATE_PATH too).
	State *Store
	Reads interface {
		StaticRead(secret string) bool
	}

	plugin string
	// v1: the secrets whose KV v1 mount without STATE_PATH was reported.
	v1 map[string]bool
	// What a term learns, dropped at its start (another leader may have
	// written STATE_PATH and rolled services meanwhile):
	// key and hashes are KV v1's HMAC key and last hashes, read from
	// STATE_PATH (unversioned.go); versions is when this leader first saw
	// each scope's version; rolled the change each service was rolled
	// for, per scope.
	key      []byte
	hashes   map[string]seenHash
	versions map[string]seenVersion
	rolled   map[string]string
}

// seenVersion is a KV v2 version and when the leader takes it to have
// been written.
type seenVersion struct {
	number int
	at     time.Time
}

// NewRotator returns a Rotator that rolls services through rollouts.
func NewRotator(sw RotationSwarm, vault Versions, rollouts *Rollouts, log logrus.FieldLogger) *Rotator {
	r := &Rotator{swarm: sw, vault: vault, rollouts: rollouts, log: log.WithField("component", "rotation"), now: time.Now,
		Interval: DefaultRotationInterval, Timeout: 10 * time.Second, v1: map[string]bool{}}
	r.begin()
	return r
}

// begin forgets what another term learnt.
func (r *Rotator) begin() {
	r.key, r.hashes, r.versions, r.rolled = nil, map[string]seenHash{}, map[string]seenVersion{}, map[string]string{}
}

// scopeVersion is a scope's current version, read once a round; skip:
// nothing to compare (credentials, or not known yet).
type scopeVersion struct {
	provider.Version
	err  error
	skip bool
}

// Run runs rounds, the first at once, until ctx (the term's) ends.
func (r *Rotator) Run(ctx context.Context) {
	r.begin()
	runRounds(ctx, r.Interval, nil, r.Round, r.log)
}

// Round checks every rotating secret of every service once, and rolls each
// service that holds an old value at most once.
func (r *Rotator) Round(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	if r.plugin == "" {
		name, err := r.swarm.PluginName(cctx)
		if err != nil {
			return err
		}
		r.plugin = name
	}
	secrets, err := r.swarm.RotatingSecrets(cctx, r.plugin, provider.LabelRotate, provider.LegacyLabel(provider.LabelRotate))
	if err != nil || len(secrets) == 0 {
		return err
	}
	byID := map[string]swarm.Secret{}
	ids := make([]string, 0, len(secrets))
	for _, s := range secrets {
		plan, err := provider.ParsePlan(s.Labels)
		if err != nil || !(plan.Type == provider.TypeKV || plan.Type == provider.TypeRead && !plan.Wrap) {
			// Credentials roll before they end (the Loop); a wrapped
			// read hands over a wrapping token, whose value says
			// nothing; a secret whose labels are wrong fails its
			// tasks, which say why.
			continue
		}
		byID[s.ID] = s
		ids = append(ids, s.ID)
	}
	if len(ids) == 0 {
		return nil
	}
	services, err := r.swarm.ServicesUsing(cctx, ids)
	if err != nil {
		return err
	}
	slices.SortFunc(services, func(a, b swarm.Service) int { return strings.Compare(a.Name, b.Name) })
	read := map[string]scopeVersion{}
	for _, svc := range services {
		r.rollIfOld(ctx, svc, byID, read)
	}
	return nil
}

// rollIfOld rolls svc if a task of it was created before the current
// version of a rotating secret it uses, and it was not rolled for that
// version already. read holds the versions this round read.
func (r *Rotator) rollIfOld(ctx context.Context, svc swarm.Service, secrets map[string]swarm.Secret, read map[string]scopeVersion) {
	entry := r.log.WithField("service", svc.Name)
	if !svc.Settled() {
		// Rolling already, paused by a failure, or rolling back: the
		// operator's to look at, and never forced again meanwhile.
		r.rollouts.unsettled(svc)
		return
	}
	r.rollouts.settled(svc.ID)
	if svc.Oldest.IsZero() {
		return // no task to roll
	}
	var why []string
	var changed []map[string]string
	var marks []string
	for _, id := range svc.Secrets {
		sec := secrets[id]
		req := provider.Request{}
		req.ServiceName, req.ServiceID, req.ServiceLabels = svc.Name, svc.ID, svc.Labels
		req.SecretName, req.SecretLabels = sec.Name, sec.Labels
		v, scope := r.currentVersion(ctx, req, read)
		if v.skip || v.err != nil {
			switch {
			case errors.Is(v.err, errNoState):
				if !r.v1[id] {
					r.v1[id] = true
					entry.WithField("secret", sec.Name).Warnf("%v; until then, docker service update --force %s gives its tasks the current value", v.err, svc.Name)
				}
			case v.err != nil:
				entry.WithField("secret", sec.Name).Errorf("cannot read the secret's version: %v", v.err)
			}
			continue
		}
		created, change := r.written(scope, v.Version)
		rolledKey := svc.ID + "\x00" + scope
		if !created.After(svc.Oldest) || r.rolled[rolledKey] == change {
			continue
		}
		marks = append(marks, rolledKey, change)
		changed = append(changed, sec.Labels)
		if v.Number == 0 {
			why = append(why, fmt.Sprintf("secret %s changed in Vault (no versions: told by its hash), seen %s", sec.Name, created.UTC().Format(time.RFC3339)))
		} else {
			why = append(why, fmt.Sprintf("secret %s has version %d, written %s", sec.Name, v.Number, v.Created.UTC().Format(time.RFC3339)))
		}
	}
	if len(why) == 0 {
		return
	}
	for _, labels := range changed {
		r.vault.ForgetReused(labels)
	}
	cctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	if r.rollouts.roll(cctx, svc.ID, svc.Name, strings.Join(why, "; ")) {
		for i := 0; i < len(marks); i += 2 {
			r.rolled[marks[i]] = marks[i+1]
		}
	}
}

// written tells when the leader takes a scope's current version to have
// been written, on its own clock, which is the clock of the tasks' creation
// times (the leader's engine sets them): a version first seen during this
// term was written at most as long ago as the round before; one there at
// the term's start has only Vault's created_time, taken as it is but never
// later than now, so that a Vault clock ahead of the leader's does not roll
// the new tasks again. change names the version, for rolled.
func (r *Rotator) written(scope string, v provider.Version) (at time.Time, change string) {
	if v.Number == 0 {
		// A hash's change time is the leader's already (unversioned.go).
		return v.Created, "changed " + v.Created.UTC().Format(time.RFC3339Nano)
	}
	change = "version " + strconv.Itoa(v.Number)
	now := r.now()
	last, ok := r.versions[scope]
	switch {
	case ok && last.number == v.Number:
		return last.at, change
	case ok:
		at = now
	default:
		at = v.Created
		if at.After(now) {
			at = now
		}
	}
	r.versions[scope] = seenVersion{number: v.Number, at: at}
	return at, change
}

// currentVersion reads req's current version, or finds it in read: one Vault read
// per scope and round, however many services share it.
func (r *Rotator) currentVersion(ctx context.Context, req provider.Request, read map[string]scopeVersion) (scopeVersion, string) {
	scope, err := r.vault.ReadScope(req)
	if err != nil {
		return scopeVersion{err: err}, ""
	}
	if v, ok := read[scope]; ok {
		return v, scope
	}
	cctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	var v scopeVersion
	if plan, _ := provider.ParsePlan(req.SecretLabels); plan.Type == provider.TypeRead {
		// A static value is compared by hash; credentials are the Loop's.
		// Which it is, the tasks' records tell, so that rotation never
		// reads a path that issues credentials.
		// Without STATE_PATH neither is kept, and the request path warns.
		if r.State == nil || r.Reads == nil || !r.Reads.StaticRead(req.SecretName) {
			v.skip = true
		} else {
			v.Version, v.err = r.unversioned(cctx, req, scope)
		}
		read[scope] = v
		return v, scope
	}
	v.Version, v.err = r.vault.CurrentVersion(cctx, req)
	if errors.Is(v.err, provider.ErrNotVersioned) {
		v.Version, v.err = r.unversioned(cctx, req, scope)
	}
	read[scope] = v
	return v, scope
}
