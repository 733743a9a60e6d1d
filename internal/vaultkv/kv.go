package vaultkv

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
)

// The methods of Mount take rel, a path below the mount ("app/db" on
// "secret/"), and the client whose token makes the call: one Mount serves
// every token. Vault's errors are returned as the client gives them.

// ErrExists is Create's answer when a secret is at the path already.
var ErrExists = errors.New("a secret exists at the path already")

// DataPath is the API path of the secret at rel: what a policy grants, and
// what a wrapping token names as its creation path (secret/data/app/db on
// KV v2, secret/app/db on KV v1).
func (m Mount) DataPath(rel string) string {
	if m.Version == 2 {
		return m.Path + "data/" + rel
	}
	return m.Path + rel
}

// metadataPath is where KV v2 lists and deletes every version of rel; KV v1
// has one path for all.
func (m Mount) metadataPath(rel string) string {
	if m.Version == 2 {
		return m.Path + "metadata/" + rel
	}
	return m.Path + rel
}

// name is the mount as api's KV helpers take it, without the slash.
func (m Mount) name() string { return strings.TrimSuffix(m.Path, "/") }

// Get reads the secret at rel: version 0 is the latest. No secret (or no
// such version) is api.ErrSecretNotFound; a deleted or destroyed KV v2
// version is a KVSecret with nil Data and its VersionMetadata. KV v1 keeps
// no versions, so a version asked of it is an error.
func (m Mount) Get(ctx context.Context, client *api.Client, rel string, version int) (*api.KVSecret, error) {
	switch {
	case m.Version != 2 && version != 0:
		return nil, fmt.Errorf("version %d of %s cannot be read: KV v1 mount %s keeps no versions", version, rel, m.Path)
	case m.Version != 2:
		return client.KVv1(m.name()).Get(ctx, rel)
	case version != 0:
		return client.KVv2(m.name()).GetVersion(ctx, rel, version)
	default:
		return client.KVv2(m.name()).Get(ctx, rel)
	}
}

// Put writes data as the secret at rel, whatever is there.
func (m Mount) Put(ctx context.Context, client *api.Client, rel string, data map[string]any) error {
	if m.Version != 2 {
		return client.KVv1(m.name()).Put(ctx, rel, data)
	}
	_, err := client.KVv2(m.name()).Put(ctx, rel, data)
	return err
}

// Create writes data as the secret at rel only if there is none: on KV v2
// with check-and-set 0, so that of two writers one wins and the other gets
// ErrExists. KV v1 has no check-and-set: there Create is Put, and the last
// write wins.
func (m Mount) Create(ctx context.Context, client *api.Client, rel string, data map[string]any) error {
	if m.Version != 2 {
		return m.Put(ctx, client, rel, data)
	}
	_, err := client.KVv2(m.name()).Put(ctx, rel, data, api.WithCheckAndSet(0))
	if BadRequestSaying(err, "check-and-set") {
		// Vault: "check-and-set parameter did not match the current version".
		return ErrExists
	}
	return err
}

// List returns the names under the directory rel, as Vault gives them (a
// directory's with a trailing slash); none when there are none.
func (m Mount) List(ctx context.Context, client *api.Client, rel string) ([]string, error) {
	s, err := client.Logical().ListWithContext(ctx, m.metadataPath(rel))
	if err != nil || s == nil || s.Data == nil {
		return nil, err
	}
	keys, _ := s.Data["keys"].([]any)
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		name, _ := k.(string)
		names = append(names, name)
	}
	return names, nil
}

// Delete removes the secret at rel, on KV v2 every version of it and its
// metadata: nothing is left to undelete.
func (m Mount) Delete(ctx context.Context, client *api.Client, rel string) error {
	if m.Version != 2 {
		return client.KVv1(m.name()).Delete(ctx, rel)
	}
	return client.KVv2(m.name()).DeleteMetadata(ctx, rel)
}
