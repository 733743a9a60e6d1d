package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/internal/vaultkv"
	"github.com/swarmvault/swarmvault/provider"
)

// Record is what the plugin issued for one task and secret, as kept under
// STATE_PATH: the credentials' accessor and lease, never a token or value.
type Record struct {
	TaskID      string
	Secret      string
	ServiceID   string
	ServiceName string
	provider.Credentials
	Issued time.Time
	// TokenUntil and LeaseUntil are when the token and the lease end as of
	// the last renewal its writer made (zero: not known, in a record an
	// older plugin wrote). A new leader renews what is due by them and asks
	// Vault nothing of the rest, so that a takeover reads each record once;
	// the leader writes a record again after each renewal. They are by the
	// writer's clock: managers' clocks a few seconds apart are well inside
	// the renewal margin (half a TTL); a record that says too early costs
	// only a lookup (Loop.verify) that learns the real end, and one that
	// says too late is taken for no later than a full TTL from now.
	TokenUntil, LeaseUntil time.Time
}

// key names a record under STATE_PATH. Task IDs are lower-case letters and
// digits, so the first dot ends the ID whatever the secret's name.
func key(taskID, secret string) string { return taskID + "." + secret }

// Key is the record's name under STATE_PATH.
func (r Record) Key() string { return key(r.TaskID, r.Secret) }

func (r Record) data() map[string]any {
	return map[string]any{
		"task_id":         r.TaskID,
		"secret":          r.Secret,
		"service_id":      r.ServiceID,
		"service":         r.ServiceName,
		"accessor":        r.Accessor,
		"token_ttl":       int64(r.TokenTTL / time.Second),
		"lease_id":        r.LeaseID,
		"lease_ttl":       int64(r.LeaseTTL / time.Second),
		"lease_renewable": r.LeaseRenewable,
		"rotate":          r.Rotate,
		"issued":          r.Issued.UTC().Format(time.RFC3339),
		"expires":         unixOrZero(r.Expires),
		"token_until":     unixOrZero(r.TokenUntil),
		"lease_until":     unixOrZero(r.LeaseUntil),
	}
}

// unixOrZero is t in Unix seconds, 0 for the zero time.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func recordFrom(d map[string]any) (Record, error) {
	str := func(k string) string { s, _ := d[k].(string); return s }
	secs := func(k string) time.Duration {
		var n int64
		switch v := d[k].(type) {
		case json.Number:
			n, _ = v.Int64()
		case float64:
			n = int64(v)
		case string:
			n, _ = strconv.ParseInt(v, 10, 64)
		}
		return time.Duration(n) * time.Second
	}
	r := Record{
		TaskID: str("task_id"), Secret: str("secret"), ServiceID: str("service_id"), ServiceName: str("service"),
		Credentials: provider.Credentials{
			Accessor: str("accessor"), TokenTTL: secs("token_ttl"),
			LeaseID: str("lease_id"), LeaseTTL: secs("lease_ttl"),
		},
	}
	r.LeaseRenewable, _ = d["lease_renewable"].(bool)
	r.Rotate, _ = d["rotate"].(bool)
	r.Issued, _ = time.Parse(time.RFC3339, str("issued"))
	at := func(k string) time.Time {
		if n := secs(k); n > 0 {
			return time.Unix(int64(n/time.Second), 0).UTC()
		}
		return time.Time{}
	}
	r.Expires, r.TokenUntil, r.LeaseUntil = at("expires"), at("token_until"), at("lease_until")
	if r.TaskID == "" || r.Secret == "" || r.Accessor == "" {
		return Record{}, errNotRecord
	}
	return r, nil
}

// errNotRecord: an entry under STATE_PATH that the plugin did not write.
var errNotRecord = errors.New("not a swarmvault record (no task_id, secret or accessor)")

// Store keeps records in Vault's KV under STATE_PATH, one entry per task and
// secret, so that whichever manager leads next finds them.
type Store struct {
	vault *api.Client
	path  string

	mu sync.Mutex
	kv *kvPath
}

// kvPath is STATE_PATH on its mount.
type kvPath struct {
	vaultkv.Mount
	rel string // "swarmvault/state", no slashes at the ends
}

// NewStore returns the Store at path (STATE_PATH) in the Vault that client
// reaches, with the plugin's own token.
func NewStore(client *api.Client, path string) *Store {
	return &Store{vault: client, path: strings.Trim(path, "/")}
}

// Path is STATE_PATH as given.
func (s *Store) Path() string { return s.path }

// where finds STATE_PATH's mount and KV version once: a mount does not move
// under a running plugin in any way that would keep its records readable.
func (s *Store) where(ctx context.Context) (kvPath, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return *s.kv, nil
	}
	m, err := vaultkv.Lookup(ctx, s.vault, s.path)
	var notKV *vaultkv.NotKVError
	switch {
	case vaultkv.Forbidden(err):
		return kvPath{}, fmt.Errorf("STATE_PATH=%s is on no mount the plugin's token may use: grant its policy the paths docs/vault-setup.md lists for STATE_PATH, or fix the setting", s.path)
	case errors.Is(err, vaultkv.ErrNoMount):
		return kvPath{}, fmt.Errorf("no Vault mount holds STATE_PATH=%s: its first segment must be a KV mount, e.g. secret/swarmvault/state", s.path)
	case errors.As(err, &notKV):
		return kvPath{}, fmt.Errorf("STATE_PATH=%s is on a %s mount (%s), not a KV mount", s.path, notKV.Type, notKV.Mount)
	case err != nil:
		return kvPath{}, fmt.Errorf("cannot find the mount of STATE_PATH=%s: %s", s.path, vaultkv.ErrorText(err))
	}
	rel := strings.Trim(strings.TrimPrefix(s.path+"/", m.Path), "/")
	if rel == "" {
		return kvPath{}, fmt.Errorf("STATE_PATH=%s names the mount itself: add a path below it, e.g. %sswarmvault/state", s.path, m.Path)
	}
	s.kv = &kvPath{Mount: m, rel: rel}
	return *s.kv, nil
}

// ErrRecorded is Put's answer for a task and secret that have a record
// already: another leader issued credentials for them (a re-fetch it
// served while this one did too, as leadership moved).
var ErrRecorded = errors.New("a record of the task's credentials for this secret exists already")

// Put writes r, on KV v2 only if no record of its task and secret exists
// (check-and-set 0): of two managers that served one task as leadership
// moved, one records its credentials and the other is told (ErrRecorded),
// so that no credential goes unrecorded. KV v1 has no check-and-set: there
// the last write wins.
func (s *Store) Put(ctx context.Context, r Record) error {
	err := s.write(ctx, r.Key(), r.data(), true)
	if errors.Is(err, ErrRecorded) {
		// Maybe this very record: a write Vault made whose answer was
		// lost, written again.
		if had, found, gerr := s.Get(ctx, r.TaskID, r.Secret); gerr == nil && found && had.Accessor == r.Accessor {
			return nil
		}
	}
	return err
}

// Update writes r again, whatever is there: after a renewal, so that the
// record tells the next leader when its credentials end. It does not
// check-and-set: of two managers that both think they lead (for up to a
// leadership poll), one may write again a record the other deleted as it
// revoked the task's token; the next round's load reads it, finds the
// token gone and deletes it.
func (s *Store) Update(ctx context.Context, r Record) error {
	return s.write(ctx, r.Key(), r.data(), false)
}

// write writes the entry name under STATE_PATH; create: only if it does
// not exist (KV v2).
func (s *Store) write(ctx context.Context, name string, data map[string]any, create bool) error {
	p, err := s.where(ctx)
	if err != nil {
		return err
	}
	put := p.Put
	if create {
		put = p.Create
	}
	err = put(ctx, s.vault, p.rel+"/"+name, data)
	if errors.Is(err, vaultkv.ErrExists) {
		return ErrRecorded
	}
	if err != nil {
		return s.failed("write", err)
	}
	return nil
}

// read reads the entry name under STATE_PATH: nil when there is none.
func (s *Store) read(ctx context.Context, name string) (map[string]any, error) {
	p, err := s.where(ctx)
	if err != nil {
		return nil, err
	}
	kv, err := p.Get(ctx, s.vault, p.rel+"/"+name, 0)
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.failed("read", err)
	}
	if kv == nil {
		return nil, nil
	}
	return kv.Data, nil
}

// Get reads the record of a task and secret; found is false when there is
// none.
func (s *Store) Get(ctx context.Context, taskID, secret string) (r Record, found bool, err error) {
	data, err := s.read(ctx, key(taskID, secret))
	if err != nil || data == nil {
		return Record{}, false, err
	}
	r, err = recordFrom(data)
	if err != nil {
		return Record{}, false, fmt.Errorf("STATE_PATH=%s entry %s: %w", s.path, key(taskID, secret), err)
	}
	return r, true, nil
}

// splitKey is key's inverse: ok is false for a name that is no record's.
func splitKey(name string) (taskID, secret string, ok bool) {
	taskID, secret, ok = strings.Cut(name, ".")
	return taskID, secret, ok && taskID != "" && secret != "" && !strings.HasSuffix(name, "/")
}

// Names lists the entries under STATE_PATH that may be records: all but
// what rotation keeps there.
func (s *Store) Names(ctx context.Context) ([]string, error) {
	p, err := s.where(ctx)
	if err != nil {
		return nil, err
	}
	names, err := p.List(ctx, s.vault, p.rel)
	if err != nil {
		return nil, s.failed("list", err)
	}
	return slices.DeleteFunc(names, func(name string) bool { return name == rotationDir }), nil
}

// List reads every record. Entries that are not records are reported in
// bad, by name, and left alone: STATE_PATH may be shared by mistake.
func (s *Store) List(ctx context.Context) (records []Record, bad []string, err error) {
	names, err := s.Names(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range names {
		taskID, secret, ok := splitKey(name)
		if !ok {
			bad = append(bad, name)
			continue
		}
		r, found, err := s.Get(ctx, taskID, secret)
		if err != nil {
			if errors.Is(err, errNotRecord) {
				bad = append(bad, name)
				continue
			}
			return nil, nil, err
		}
		if found {
			records = append(records, r)
		}
	}
	return records, bad, nil
}

// Delete removes a record, every version of it on KV v2.
func (s *Store) Delete(ctx context.Context, taskID, secret string) error {
	p, err := s.where(ctx)
	if err != nil {
		return err
	}
	if err := p.Delete(ctx, s.vault, p.rel+"/"+key(taskID, secret)); err != nil {
		return s.failed("delete", err)
	}
	return nil
}

// Check asks Vault whether the plugin's token may do all the Store does,
// so that a missing grant is one line naming the path, not a failure per
// task later.
func (s *Store) Check(ctx context.Context) error {
	p, err := s.where(ctx)
	if err != nil {
		return err
	}
	type need struct {
		path string
		caps []string
	}
	var needs []need
	if p.Version == 2 {
		needs = []need{
			{p.Path + "data/" + p.rel + "/x", []string{"create", "update", "read"}},
			{p.Path + "metadata/" + p.rel + "/x", []string{"delete"}},
			{p.Path + "metadata/" + p.rel + "/", []string{"list"}},
		}
	} else {
		needs = []need{
			{p.Path + p.rel + "/x", []string{"create", "update", "read", "delete"}},
			{p.Path + p.rel + "/", []string{"list"}},
		}
	}
	// A record read from STATE_PATH is acted on once the token's metadata
	// names its task (Loop.verify).
	needs = append(needs, need{"auth/token/lookup-accessor", []string{"update"}})
	var missing []string
	for _, n := range needs {
		have, err := s.vault.Sys().CapabilitiesSelfWithContext(ctx, n.path)
		if err != nil {
			return fmt.Errorf("cannot check the plugin's capabilities on STATE_PATH=%s: %s", s.path, vaultkv.ErrorText(err))
		}
		if slices.Contains(have, "root") {
			continue
		}
		for _, c := range n.caps {
			if !slices.Contains(have, c) {
				missing = append(missing, fmt.Sprintf("%s on %s", c, shown(n.path)))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("STATE_PATH=%s: the plugin's token lacks %s; add them to its policy (docs/vault-setup.md lists the lifecycle's paths)", s.path, strings.Join(missing, ", "))
	}
	return nil
}

// shown is a path Check asked about as a policy names it: a probe entry
// (.../x) or a directory stands for everything under it.
func shown(path string) string {
	if strings.HasSuffix(path, "/") || strings.HasSuffix(path, "/x") {
		return strings.TrimSuffix(path, "x") + "*"
	}
	return path
}

func (s *Store) failed(op string, err error) error {
	if vaultkv.Forbidden(err) {
		return fmt.Errorf("the plugin's token may not %s under STATE_PATH=%s: grant its policy the paths docs/vault-setup.md lists for STATE_PATH", op, s.path)
	}
	return fmt.Errorf("cannot %s under STATE_PATH=%s: %s", op, s.path, vaultkv.ErrorText(err))
}
