package vaultkv

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/hashicorp/vault/api"
)

var (
	v1 = Mount{Path: "secret/", Version: 1}
	v2 = Mount{Path: "secret/", Version: 2}
)

// kvAnswer answers the fake Vault as a KV mount holding one secret.
func kvAnswer(c call) (int, string) {
	switch c.Method + " " + c.Path {
	case "GET /v1/secret/foo":
		return 200, `{"data":{"k":"v1"}}`
	case "GET /v1/secret/data/foo":
		return 200, `{"data":{"data":{"k":"v2"},"metadata":{"version":3,"created_time":"2026-01-01T00:00:00Z"}}}`
	case "PUT /v1/secret/data/foo":
		return 200, `{"data":{"version":4,"created_time":"2026-01-01T00:00:00Z"}}`
	case "PUT /v1/secret/foo", "DELETE /v1/secret/foo", "DELETE /v1/secret/metadata/foo":
		return 204, ``
	case "GET /v1/secret/dir", "GET /v1/secret/metadata/dir":
		if c.Query == "list=true" {
			return 200, `{"data":{"keys":["a","b/"]}}`
		}
	}
	return 404, `{"errors":[]}`
}

func TestDataPath(t *testing.T) {
	if got := v1.DataPath("app/db"); got != "secret/app/db" {
		t.Errorf("v1: %s", got)
	}
	if got := v2.DataPath("app/db"); got != "secret/data/app/db" {
		t.Errorf("v2: %s", got)
	}
}

func TestGet(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m       Mount
		version int
		call    string
		query   string
		want    map[string]any
	}{
		{"v1", v1, 0, "GET /v1/secret/foo", "", map[string]any{"k": "v1"}},
		{"v2", v2, 0, "GET /v1/secret/data/foo", "", map[string]any{"k": "v2"}},
		{"v2 version", v2, 3, "GET /v1/secret/data/foo", "version=3", map[string]any{"k": "v2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFakeVault(t, kvAnswer)
			s, err := tc.m.Get(context.Background(), client, "foo", tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Data, tc.want) {
				t.Errorf("Data = %v, want %v", s.Data, tc.want)
			}
			calls := f.Calls()
			if paths(calls) != tc.call || calls[0].Query != tc.query {
				t.Errorf("calls: %s ?%s; want %s ?%s", paths(calls), calls[0].Query, tc.call, tc.query)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		_, client := newFakeVault(t, kvAnswer)
		for _, m := range []Mount{v1, v2} {
			if _, err := m.Get(context.Background(), client, "none", 0); !errors.Is(err, api.ErrSecretNotFound) {
				t.Errorf("KV v%d: err = %v, want api.ErrSecretNotFound", m.Version, err)
			}
		}
	})

	t.Run("v1 version", func(t *testing.T) {
		f, client := newFakeVault(t, kvAnswer)
		_, err := v1.Get(context.Background(), client, "foo", 2)
		if want := "version 2 of foo cannot be read: KV v1 mount secret/ keeps no versions"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %q", err, want)
		}
		if calls := f.Calls(); len(calls) != 0 {
			t.Errorf("calls: %s, want none", paths(calls))
		}
	})
}

func TestPut(t *testing.T) {
	data := map[string]any{"k": "v"}
	for _, tc := range []struct {
		name string
		put  func(context.Context, *api.Client, string, map[string]any) error
		call string
		body string
	}{
		{"v1 put", v1.Put, "PUT /v1/secret/foo", `{"k":"v"}`},
		{"v1 create", v1.Create, "PUT /v1/secret/foo", `{"k":"v"}`},
		{"v2 put", v2.Put, "PUT /v1/secret/data/foo", `{"data":{"k":"v"}}`},
		{"v2 create", v2.Create, "PUT /v1/secret/data/foo", `{"data":{"k":"v"},"options":{"cas":0}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, client := newFakeVault(t, kvAnswer)
			if err := tc.put(context.Background(), client, "foo", data); err != nil {
				t.Fatal(err)
			}
			calls := f.Calls()
			if paths(calls) != tc.call {
				t.Fatalf("calls: %s, want %s", paths(calls), tc.call)
			}
			if body, _ := json.Marshal(calls[0].Body); string(body) != tc.body {
				t.Errorf("body %s, want %s", body, tc.body)
			}
		})
	}

	t.Run("v2 create over a secret", func(t *testing.T) {
		_, client := newFakeVault(t, func(call) (int, string) {
			return 400, vaultError("check-and-set parameter did not match the current version")
		})
		if err := v2.Create(context.Background(), client, "foo", data); err != ErrExists {
			t.Errorf("err = %v, want ErrExists", err)
		}
		if err := v2.Put(context.Background(), client, "foo", data); err == nil || errors.Is(err, ErrExists) {
			t.Errorf("Put: err = %v, want Vault's 400", err)
		}
	})

	t.Run("v2 create refused otherwise", func(t *testing.T) {
		_, client := newFakeVault(t, func(call) (int, string) { return 400, vaultError("no handler for route") })
		err := v2.Create(context.Background(), client, "foo", data)
		if errors.Is(err, ErrExists) || !StatusIs(err, http.StatusBadRequest) {
			t.Errorf("err = %v, want Vault's 400", err)
		}
	})
}

func TestList(t *testing.T) {
	for _, tc := range []struct {
		m    Mount
		call string
	}{
		{v1, "GET /v1/secret/dir"},
		{v2, "GET /v1/secret/metadata/dir"},
	} {
		f, client := newFakeVault(t, kvAnswer)
		names, err := tc.m.List(context.Background(), client, "dir")
		if err != nil || !reflect.DeepEqual(names, []string{"a", "b/"}) {
			t.Errorf("KV v%d: List = %q, %v", tc.m.Version, names, err)
		}
		calls := f.Calls()
		if got := paths(calls); got != tc.call || calls[0].Query != "list=true" {
			t.Errorf("KV v%d: calls %s ?%s, want %s ?list=true", tc.m.Version, got, calls[0].Query, tc.call)
		}
	}

	// Vault answers an empty directory with 404.
	_, client := newFakeVault(t, kvAnswer)
	if names, err := v2.List(context.Background(), client, "empty"); err != nil || names != nil {
		t.Errorf("empty: List = %q, %v; want none", names, err)
	}
}

func TestDelete(t *testing.T) {
	for _, tc := range []struct {
		m    Mount
		call string
	}{
		{v1, "DELETE /v1/secret/foo"},
		{v2, "DELETE /v1/secret/metadata/foo"},
	} {
		f, client := newFakeVault(t, kvAnswer)
		if err := tc.m.Delete(context.Background(), client, "foo"); err != nil {
			t.Errorf("KV v%d: %v", tc.m.Version, err)
		}
		if got := paths(f.Calls()); got != tc.call {
			t.Errorf("KV v%d: calls %s, want %s", tc.m.Version, got, tc.call)
		}
	}
}
