package lifecycle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/swarmvault/swarmvault/provider"
)

// KV v1 keeps no versions, nor does a vault.type=read of a value without a
// lease, so rotation gives their secrets one: the time the
// leader first saw the value differ from the one before, told apart by a
// keyed hash (HMAC-SHA256), never the value. Both live under
// STATE_PATH/rotation/, so that the next leader compares with what this one
// saw, and a change made while leadership moves is rolled by the new
// leader's first round:
//
//	rotation/key       the HMAC key, made by the first leader that needs it
//	rotation/<scope>   per path and policy set: the hash, and when it changed
//
// The key sits beside the hashes: STATE_PATH is the plugin's alone (it holds
// the accessors of every task token), and whoever may read it could as
// well be given the secrets. The hash only keeps a value out of the
// swarm's Raft log and out of any log line.
const rotationDir = "rotation/"

// errNoState: rotation by hash keeps its hashes under STATE_PATH.
var errNoState = errors.New("rotating a KV v1 secret needs STATE_PATH, where the leader keeps a keyed hash of its value: docker plugin set <plugin> STATE_PATH=<kv path>")

// seenHash is what rotation keeps of a KV v1 value: its hash, and when the
// leader saw it change (zero: the first value seen, which the running
// tasks are taken to hold).
type seenHash struct {
	fingerprint string
	changed     time.Time
}

// unversioned gives the secret req names its pseudo version: the time
// its current value was first seen. One Vault read of the value a round;
// STATE_PATH is read once per leadership term and written on a change.
func (r *Rotator) unversioned(ctx context.Context, req provider.Request, scope string) (provider.Version, error) {
	if r.State == nil {
		return provider.Version{}, errNoState
	}
	key, err := r.fingerprintKey(ctx)
	if err != nil {
		return provider.Version{}, err
	}
	fp, err := r.vault.Fingerprint(ctx, req, key)
	if err != nil {
		return provider.Version{}, err
	}
	name := rotationDir + scopeName(scope)
	last, ok := r.hashes[scope]
	if !ok {
		d, err := r.State.read(ctx, name)
		if err != nil {
			return provider.Version{}, err
		}
		if d != nil {
			last.fingerprint, _ = d["fingerprint"].(string)
			changed, _ := d["changed"].(string)
			last.changed, _ = time.Parse(time.RFC3339Nano, changed)
			ok = true
		}
	}
	now := last
	switch {
	case !ok:
		now = seenHash{fingerprint: fp} // first sight
	case last.fingerprint != fp:
		now = seenHash{fingerprint: fp, changed: r.now()}
	}
	if !ok || now != last {
		changed := ""
		if !now.changed.IsZero() {
			changed = now.changed.UTC().Format(time.RFC3339Nano)
		}
		plan, _ := provider.ParsePlan(req.SecretLabels)
		if err := r.State.write(ctx, name, map[string]any{"path": plan.Path, "fingerprint": fp, "changed": changed}, false); err != nil {
			return provider.Version{}, err
		}
	}
	r.hashes[scope] = now
	return provider.Version{Created: now.changed}, nil
}

// fingerprintKey reads the HMAC key from STATE_PATH, or makes it.
func (r *Rotator) fingerprintKey(ctx context.Context) ([]byte, error) {
	if r.key != nil {
		return r.key, nil
	}
	d, err := r.State.read(ctx, rotationDir+"key")
	if err != nil {
		return nil, err
	}
	if s, _ := d["key"].(string); s != "" {
		if r.key, err = base64.StdEncoding.DecodeString(s); err != nil || len(r.key) < 32 {
			r.key = nil
			return nil, fmt.Errorf("STATE_PATH=%s entry %skey is not a key swarmvault made: delete it, and the next round makes one", r.State.Path(), rotationDir)
		}
		return r.key, nil
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := r.State.write(ctx, rotationDir+"key", map[string]any{"key": base64.StdEncoding.EncodeToString(key)}, false); err != nil {
		return nil, err
	}
	r.key = key
	return key, nil
}

// scopeName names a scope's entry: its path and policies, hashed, since
// neither is a KV key as it stands.
func scopeName(scope string) string {
	sum := sha256.Sum256([]byte(scope))
	return hex.EncodeToString(sum[:16])
}
