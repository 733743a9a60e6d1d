package lifecycle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	swarmtypes "github.com/docker/docker/api/types/swarm"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
)

type rotationSwarm struct {
	secrets  []swarm.Secret
	services []swarm.Service
	forced   []string
}

func (f *rotationSwarm) PluginName(context.Context) (string, error) { return "vault:latest", nil }
func (f *rotationSwarm) ForceUpdate(_ context.Context, id string) error {
	f.forced = append(f.forced, id)
	return nil
}
func (f *rotationSwarm) RotatingSecrets(_ context.Context, plugin string, labels ...string) ([]swarm.Secret, error) {
	if plugin != "vault:latest" || !slices.Contains(labels, "vault.rotate") {
		return nil, fmt.Errorf("asked for %s %v", plugin, labels)
	}
	return f.secrets, nil
}

// ServicesUsing gives the services that use any of ids, with those of
// their secrets only, as swarm.Engine does.
func (f *rotationSwarm) ServicesUsing(_ context.Context, ids []string) ([]swarm.Service, error) {
	var out []swarm.Service
	for _, svc := range f.services {
		mine := svc
		mine.Secrets = nil
		for _, id := range svc.Secrets {
			if slices.Contains(ids, id) {
				mine.Secrets = append(mine.Secrets, id)
			}
		}
		if len(mine.Secrets) > 0 {
			out = append(out, mine)
		}
	}
	return out, nil
}

// versions gives each secret's version by name; v1 names a KV v1 secret.
type versions struct {
	at     map[string]provider.Version
	values map[string]string // KV v1's, for Fingerprint
	reads  int
	hashed []string // the secrets Fingerprint read
	forgot []string // the paths ForgetReused was given
}

func (v *versions) ForgetReused(labels map[string]string) {
	v.forgot = append(v.forgot, labels["vault.path"])
}

// staticReads tells static reads by name.
type staticReads map[string]bool

func (s staticReads) StaticRead(secret string) bool { return s[secret] }

func (v *versions) CurrentVersion(_ context.Context, req provider.Request) (provider.Version, error) {
	v.reads++
	if req.SecretName == "v1" {
		return provider.Version{}, fmt.Errorf("Vault path kv1/db is on mount kv1/: %w", provider.ErrNotVersioned)
	}
	return v.at[req.SecretName], nil
}

// Fingerprint: a hash of the key and the value.
func (v *versions) Fingerprint(_ context.Context, req provider.Request, key []byte) (string, error) {
	v.reads++
	v.hashed = append(v.hashed, req.SecretName)
	return fmt.Sprintf("%x", sha256.Sum256(append(key, v.values[req.SecretName]...))), nil
}

// ReadScope: the services labelled with one policy set share a scope.
func (v *versions) ReadScope(req provider.Request) (string, error) {
	policies := req.ServiceLabels["policies"]
	if policies == "" {
		policies = req.ServiceName
	}
	return req.SecretName + " " + policies, nil
}

func TestRotatorRollsEachServiceOnce(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	kv := map[string]string{"vault.path": "secret/app", "vault.rotate": "true"}
	sw := &rotationSwarm{
		secrets: []swarm.Secret{{ID: "s-db", Name: "db", Labels: kv}, {ID: "s-api", Name: "api", Labels: kv}, {ID: "s-v1", Name: "v1", Labels: kv},
			// Credentials: the Loop's, never read here.
			{ID: "s-pg", Name: "pg", Labels: map[string]string{"vault.type": "read", "vault.path": "database/creds/app", "vault.rotate": "true"}}},
		services: []swarm.Service{
			// Both secrets changed after its oldest task: one rollout.
			{ID: "a", Name: "app", Secrets: []string{"s-db", "s-api"}, Oldest: t0},
			// Shares db: rolled too.
			{ID: "b", Name: "batch", Secrets: []string{"s-db"}, Oldest: t0, Labels: map[string]string{"policies": "jobs"}},
			// Its tasks are newer than the versions: nothing to do. Its
			// policies are batch's: db is read once for both.
			{ID: "c", Name: "cron", Secrets: []string{"s-db"}, Oldest: t0.Add(time.Hour), Labels: map[string]string{"policies": "jobs"}},
			// Rolling already: left alone, and said once.
			{ID: "d", Name: "daemon", Secrets: []string{"s-db"}, Oldest: t0, Update: swarmtypes.UpdateStatePaused, UpdateMessage: "update paused due to failure"},
			// KV v1: a warning once, nothing rolled.
			{ID: "e", Name: "edge", Secrets: []string{"s-v1"}, Oldest: t0},
			// Its credentials are not versions.
			{ID: "f", Name: "pgapp", Secrets: []string{"s-pg"}, Oldest: t0},
		},
	}
	vs := &versions{at: map[string]provider.Version{"db": {Number: 2, Created: t0.Add(time.Minute)}, "api": {Number: 5, Created: t0.Add(2 * time.Minute)}}}
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	obs := &observer{}
	rollouts := NewRollouts(sw, log)
	rollouts.Observer = obs
	r := NewRotator(sw, vs, rollouts, log)
	for round := range 2 {
		if err := r.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
		// app's db and api, jobs' db (batch and cron), edge's v1.
		if vs.reads != 4*(round+1) {
			t.Errorf("round %d: %d Vault reads in all, want 4 a round", round+1, vs.reads)
		}
		// The rolled services' tasks are new by the next round.
		for i := range sw.services {
			if sw.services[i].ID == "a" || sw.services[i].ID == "b" {
				sw.services[i].Oldest = t0.Add(time.Hour)
			}
		}
	}
	if fmt.Sprint(sw.forced) != "[a b]" {
		t.Errorf("forced %v, want [a b]", sw.forced)
	}
	// Before each roll, the kept values of its changed secrets go: app's
	// db and api, batch's db.
	if len(vs.forgot) != 3 {
		t.Errorf("ForgetReused %d times before the rolls, want 3", len(vs.forgot))
	}
	out := logs.String()
	for _, want := range []string{
		`msg="rolling the service (as docker service update --force does): secret db has version 2, written 2026-11-26T12:01:00Z; secret api has version 5, written 2026-11-26T12:02:00Z" component=rotation service=app`,
		`msg="rolling the service (as docker service update --force does): secret db has version 2, written 2026-11-26T12:01:00Z" component=rotation service=batch`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `level=warning msg="the service's last rollout failed, its update is paused (update paused due to failure): not rolled again until it settles; see docker service ps daemon" component=rotation`) {
		t.Errorf("the failed rollout is not a warning:\n%s", out)
	}
	if strings.Count(out, "not rolled again until it settles") != 1 || strings.Count(out, "rotating a KV v1 secret needs STATE_PATH") != 1 {
		t.Errorf("want one line for the paused update and one for KV v1:\n%s", out)
	}
	if fmt.Sprint(obs.rollouts) != "[started started rollout_failed]" {
		t.Errorf("rollouts observed: %v, want two started and one failed rollout", obs.rollouts)
	}
}

// observer keeps what the loops told it.
type observer struct {
	leading  []bool
	rollouts []string
}

func (o *observer) Leading(l bool)         { o.leading = append(o.leading, l) }
func (o *observer) Rollout(outcome string) { o.rollouts = append(o.rollouts, outcome) }
func (o *observer) Tracked(int)            {}
func (o *observer) Renewal(bool)           {}
func (o *observer) Revocation(bool)        {}
