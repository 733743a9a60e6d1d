// Command vaultserver runs a real HashiCorp Vault server (Vault's own core and
// HTTP handler, linked as a library) in dev mode on a loopback address, for the
// end-to-end tests of swarmvault on machines where no `vault` binary exists.
//
// It behaves like `vault server -dev`: in-memory storage, initialised and
// unsealed with a single Shamir key, a KV v2 engine mounted at secret/, and an
// optional fixed root token ID. The root token is written to -token-file once
// the HTTP listener is serving, so a script can poll for that file.
//
// Compiled-in backends: secrets kv (v1 and v2), database (with the
// postgresql-database-plugin) and pki, auth approle, userpass and cert,
// audit file.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	kv "github.com/hashicorp/vault-plugin-secrets-kv"
	"github.com/hashicorp/vault/audit"
	credAppRole "github.com/hashicorp/vault/builtin/credential/approle"
	credCert "github.com/hashicorp/vault/builtin/credential/cert"
	credUserpass "github.com/hashicorp/vault/builtin/credential/userpass"
	logicalDb "github.com/hashicorp/vault/builtin/logical/database"
	logicalPki "github.com/hashicorp/vault/builtin/logical/pki"
	"github.com/hashicorp/vault/helper/namespace"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/internalshared/configutil"
	dbPostgres "github.com/hashicorp/vault/plugins/database/postgresql"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/physical/inmem"
	"github.com/hashicorp/vault/vault"
)

// registry is the builtin plugin registry: the plugins compiled into this
// binary. It stands in for Vault's helper/builtinplugins, which would link
// every plugin (some of which do not compile against the released sdk).
type registry struct {
	credential map[string]logical.Factory
	secrets    map[string]logical.Factory
	database   map[string]func() (interface{}, error)
}

func (r *registry) Get(name string, t consts.PluginType) (func() (interface{}, error), bool) {
	var f logical.Factory
	switch t {
	case consts.PluginTypeCredential:
		f = r.credential[name]
	case consts.PluginTypeSecrets:
		f = r.secrets[name]
	case consts.PluginTypeDatabase:
		db, ok := r.database[name]
		return db, ok
	}
	if f == nil {
		return nil, false
	}
	return func() (interface{}, error) { return f, nil }, true
}

func (r *registry) Keys(t consts.PluginType) []string {
	var keys []string
	switch t {
	case consts.PluginTypeCredential:
		for k := range r.credential {
			keys = append(keys, k)
		}
	case consts.PluginTypeSecrets:
		for k := range r.secrets {
			keys = append(keys, k)
		}
	case consts.PluginTypeDatabase:
		for k := range r.database {
			keys = append(keys, k)
		}
	}
	return keys
}

func (r *registry) Contains(name string, t consts.PluginType) bool {
	_, ok := r.Get(name, t)
	return ok
}

func (r *registry) DeprecationStatus(name string, t consts.PluginType) (consts.DeprecationStatus, bool) {
	if r.Contains(name, t) {
		return consts.Supported, true
	}
	return consts.Unknown, false
}

func (r *registry) IsBuiltinEntPlugin(string, consts.PluginType) bool { return false }

func main() {
	addr := flag.String("addr", "127.0.0.1:8200", "loopback address to listen on (host must be 127.0.0.1)")
	tokenFile := flag.String("token-file", "", "write the root token to this file (mode 0600) once serving")
	rootID := flag.String("dev-root-token-id", "", "create the root token with this ID, like vault server -dev-root-token-id")
	noKV := flag.Bool("dev-no-kv", false, "do not mount a KV v2 engine at secret/")
	logLevel := flag.String("log-level", "info", "log level: trace, debug, info, warn, error")
	tlsCert := flag.String("tls-cert", "", "serve TLS with this PEM certificate (with -tls-key), asking clients for a certificate (cert auth)")
	tlsKey := flag.String("tls-key", "", "PEM key of -tls-cert")
	flag.Parse()

	logger := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "vault",
		Level:  hclog.LevelFromString(*logLevel),
		Output: os.Stderr,
	})
	if err := run(logger, *addr, *tokenFile, *rootID, !*noKV, *tlsCert, *tlsKey); err != nil {
		logger.Error("vaultserver failed", "error", err)
		os.Exit(1)
	}
}

func run(logger hclog.InterceptLogger, addr, tokenFile, rootID string, mountKV bool, tlsCert, tlsKey string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad -addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed", addr)
	}
	// Listen first, so a busy port fails fast; connections wait in the
	// backlog until the core is unsealed and the server starts.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	apiAddr := "http://" + ln.Addr().String()
	if tlsCert != "" || tlsKey != "" {
		cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		// RequestClientCert: Vault's cert auth method reads the client's
		// certificate from the connection and verifies it itself.
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12})
		apiAddr = "https://" + ln.Addr().String()
	}

	reg := &registry{
		credential: map[string]logical.Factory{
			"approle":  credAppRole.Factory,
			"userpass": credUserpass.Factory,
			"cert":     credCert.Factory,
		},
		secrets: map[string]logical.Factory{
			"kv":       kv.Factory,
			"database": logicalDb.Factory,
			"pki":      logicalPki.Factory,
		},
		database: map[string]func() (interface{}, error){
			"postgresql-database-plugin": dbPostgres.New,
		},
	}
	physical, err := inmem.NewInmem(nil, logger.Named("storage"))
	if err != nil {
		return err
	}
	coreConfig := &vault.CoreConfig{
		Physical:           physical,
		LogicalBackends:    reg.secrets,
		CredentialBackends: reg.credential,
		AuditBackends: map[string]audit.Factory{
			"file": audit.NewFileBackend,
		},
		BuiltinRegistry:     reg,
		DisableMlock:        true,
		Logger:              logger,
		AllLoggers:          []hclog.Logger{logger},
		RedirectAddr:        apiAddr,
		EnableRaw:           true,
		EnableIntrospection: true,
		DevToken:            rootID,
	}
	core, err := vault.NewCore(coreConfig)
	if err != nil {
		return fmt.Errorf("new core: %w", err)
	}
	defer core.Shutdown()

	rootToken, err := initDev(core, rootID, mountKV)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler: vaulthttp.Handler.Handler(&vault.HandlerProperties{
			Core:           core,
			ListenerConfig: &configutil.Listener{Type: "tcp", Address: ln.Addr().String()},
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          logger.StandardLogger(nil),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("vault dev server serving", "api_address", apiAddr)

	if tokenFile != "" {
		if err := writeFileAtomic(tokenFile, []byte(rootToken+"\n")); err != nil {
			return fmt.Errorf("write token file: %w", err)
		}
		defer os.Remove(tokenFile)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		logger.Info("shutting down", "signal", s.String())
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("http shutdown", "error", err)
	}
	return nil
}

// initDev initialises and unseals the core, and sets it up like
// `vault server -dev` (command/server.go enableDev): an optional root token
// with a fixed ID and a KV v2 engine at secret/. It returns the root token.
func initDev(core *vault.Core, rootID string, mountKV bool) (string, error) {
	ctx := namespace.RootContext(context.Background())
	res, err := core.Initialize(ctx, &vault.InitParams{
		BarrierConfig:    &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
		RecoveryConfig:   &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
		LegacyShamirSeal: true,
	})
	if err != nil {
		return "", fmt.Errorf("initialize: %w", err)
	}
	unsealed, err := core.Unseal(res.SecretShares[0])
	if err != nil {
		return "", fmt.Errorf("unseal: %w", err)
	}
	if !unsealed {
		return "", errors.New("core still sealed after unseal")
	}
	// Wait until the core is active (post-unseal setup done).
	for deadline := time.Now().Add(30 * time.Second); ; {
		if standby, err := core.Standby(); err == nil && !standby && !core.Sealed() {
			if leader, _, _, err := core.Leader(); err == nil && leader || errors.Is(err, vault.ErrHANotEnabled) {
				break
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("core did not become active")
		}
		time.Sleep(100 * time.Millisecond)
	}
	root := res.RootToken

	if rootID != "" {
		resp, err := core.HandleRequest(ctx, &logical.Request{
			ID:          "dev-gen-root",
			Operation:   logical.UpdateOperation,
			ClientToken: root,
			Path:        "auth/token/create",
			Data: map[string]interface{}{
				"id":                rootID,
				"policies":          []string{"root"},
				"no_parent":         true,
				"no_default_policy": true,
			},
		})
		if err != nil {
			return "", fmt.Errorf("create root token %q: %w", rootID, err)
		}
		if resp == nil || resp.Auth == nil {
			return "", fmt.Errorf("create root token %q: no auth in response", rootID)
		}
		if _, err := core.HandleRequest(ctx, &logical.Request{
			ID:          "dev-revoke-init-root",
			Operation:   logical.UpdateOperation,
			ClientToken: root,
			Path:        "auth/token/revoke-self",
		}); err != nil {
			return "", fmt.Errorf("revoke initial root token: %w", err)
		}
		root = resp.Auth.ClientToken
	}

	if mountKV {
		resp, err := core.HandleRequest(ctx, &logical.Request{
			Operation:   logical.ReadOperation,
			ClientToken: root,
			Path:        "sys/mounts/secret",
		})
		exists := err == nil && resp != nil && !resp.IsError()
		if !exists {
			resp, err = core.HandleRequest(ctx, &logical.Request{
				Operation:   logical.UpdateOperation,
				ClientToken: root,
				Path:        "sys/mounts/secret",
				Data: map[string]interface{}{
					"type":        "kv",
					"path":        "secret/",
					"description": "key/value secret storage",
					"options":     map[string]string{"version": "2"},
				},
			})
			if err != nil {
				return "", fmt.Errorf("mount secret/: %w", err)
			}
			if resp.IsError() {
				return "", fmt.Errorf("mount secret/: %w", resp.Error())
			}
		}
	}
	return root, nil
}

// writeFileAtomic writes data to path with mode 0600 via a rename, so a
// reader polling for the file never sees it half-written.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".vault-token-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
