// Package vaulttest is what tests share about Vault: a client of a fake
// Vault (an httptest server), a logger whose lines a test reads, and the
// real test Vault that make test-integration starts. Only tests import it.
package vaulttest

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
)

// Client returns a client of the Vault at addr, a fake one as a rule, with
// token. It retries nothing, as the plugin's own client does not, so that
// a test counts the calls the code made.
func Client(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	return client
}

// Logger returns a logger of every level, and the buffer it writes to.
func Logger() (*logrus.Logger, *bytes.Buffer) {
	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	log.SetLevel(logrus.DebugLevel)
	return log, &logs
}

// Discard returns a logger that writes nowhere.
func Discard() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// RootClient returns a client with the test Vault's root token, from
// VAULT_ADDR and VAULT_TOKEN_FILE or VAULT_TOKEN. Missing settings fail the
// test: a skipped integration test proves nothing.
func RootClient(t testing.TB) *api.Client {
	t.Helper()
	if os.Getenv("VAULT_ADDR") == "" {
		t.Fatal("VAULT_ADDR is not set: run make test-integration, which starts the dev Vault")
	}
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if f := os.Getenv("VAULT_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		client.SetToken(strings.TrimSpace(string(b)))
	}
	if client.Token() == "" {
		t.Fatal("no root token: set VAULT_TOKEN_FILE or VAULT_TOKEN")
	}
	return client
}
