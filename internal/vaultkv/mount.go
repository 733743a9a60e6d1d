package vaultkv

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/api"
)

// Mount is the KV mount a path lives on.
type Mount struct {
	// Path is the mount's path with a trailing slash, e.g. "secret/".
	Path string
	// Version is the mount's KV version, 1 or 2.
	Version int
}

// ErrNoMount is Lookup's answer for a path that no mount holds.
var ErrNoMount = errors.New("no Vault mount holds the path")

// NotKVError is Lookup's answer for a path on a mount of another engine.
type NotKVError struct {
	// Path is the path looked up.
	Path string
	// Mount is the mount's path, with a trailing slash.
	Mount string
	// Type is the mount's engine, e.g. "pki".
	Type string
}

func (e *NotKVError) Error() string {
	return fmt.Sprintf("Vault path %s is on a %s mount (%s), not a KV mount", e.Path, e.Type, e.Mount)
}

// Lookup finds the mount of path and its KV version, as `vault kv get`
// does, through sys/internal/ui/mounts, which answers any token that may
// use the path. A failed call returns Vault's error as the client gave it,
// for the caller to tell apart (Forbidden: Vault answers a path under no
// mount and a path the token may not use alike, so as not to reveal which
// mounts exist). A path on no mount is ErrNoMount, on a mount that is not
// KV a *NotKVError.
func Lookup(ctx context.Context, client *api.Client, path string) (Mount, error) {
	s, err := client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+path)
	if err != nil {
		return Mount{}, err
	}
	if s == nil || s.Data == nil {
		return Mount{}, ErrNoMount
	}
	mountPath, _ := s.Data["path"].(string)
	mountType, _ := s.Data["type"].(string)
	if mountPath == "" {
		return Mount{}, ErrNoMount
	}
	if mountType != "kv" && mountType != "generic" {
		return Mount{}, &NotKVError{Path: path, Mount: mountPath, Type: mountType}
	}
	m := Mount{Path: mountPath, Version: 1}
	if opts, ok := s.Data["options"].(map[string]any); ok && opts["version"] == "2" {
		m.Version = 2
	}
	return m, nil
}
