package vaultauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestNewTokenAuthValidates(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, file, wantErr string
	}{
		{name: "both", token: "t", file: empty, wantErr: "VAULT_TOKEN and VAULT_TOKEN_FILE are both set: keep one (a file is safer: env values show in docker plugin inspect)"},
		{name: "neither", wantErr: "no Vault token: set VAULT_TOKEN_FILE to a token file on the plugin's credentials mount, or VAULT_TOKEN"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "VAULT_TOKEN_FILE cannot be read: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "empty file", file: empty, wantErr: "VAULT_TOKEN_FILE " + empty + " is empty: write the plugin's Vault token into it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTokenAuth(tt.token, tt.file)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error %v, want %s", err, tt.wantErr)
			}
		})
	}
}

func TestTokenFileIsReadAgain(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := NewTokenAuth("", file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := a.Token(); err != nil || tok != "second" {
		t.Errorf("Token() = %q, %v; want the rotated token", tok, err)
	}
}

func fakeLookupSelf(t *testing.T, valid string) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/auth/token/lookup-self" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("X-Vault-Token") != valid {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errors":["permission denied"]}`))
			return
		}
		w.Write([]byte(`{"data":{"id":"` + valid + `","policies":["default","swarmvault"],"ttl":3600,"renewable":true}}`))
	}))
	return clientFor(t, srv)
}

func TestLoginSetsTheToken(t *testing.T) {
	client := fakeLookupSelf(t, "good-token")
	a, err := NewTokenAuth("good-token", "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.Auth().Login(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if client.Token() != "good-token" {
		t.Error("Login did not set the token on the client")
	}
	if got := strings.Join(s.Auth.Policies, ","); got != "default,swarmvault" || s.Auth.LeaseDuration != 3600 || !s.Auth.Renewable {
		t.Errorf("auth %+v", s.Auth)
	}
}

func TestLoginReportsARefusedToken(t *testing.T) {
	client := fakeLookupSelf(t, "good-token")
	a, err := NewTokenAuth("bad-token", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Auth().Login(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "Vault does not accept the plugin's token (VAULT_TOKEN)") || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("error %v", err)
	}
	if strings.Contains(err.Error(), "bad-token") {
		t.Error("the error quotes the token")
	}
	if client.Token() != "" {
		t.Error("a refused token was set on the client")
	}
}
