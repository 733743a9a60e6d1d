// Command vaultserver runs a real HashiCorp Vault server (Vault's own core and
// HTTP handler, linked as a library) in dev mode on a loopback address, for the
// end-to-end tests of swarmvault on machines where no `vault` binary exists.
//
// It behaves like `vault server -dev`: in-memory storage, initialised and
// unsealed with a single Shamir key, a KV v2 engine mounted at secret/, and an
// optional fixed root token ID. The root token is written to -token-file once
// the HTTP listener is serving, so a script can poll for that file.
//
// With -storage DIR it keeps its data instead, so a restart keeps every token,
// secret and mount: Vault's file storage in DIR/data, the unseal key (base64)
// in DIR/unseal-key and the root token in DIR/root-token (both mode 0600,
// written atomically), and an exclusive lock on DIR/lock while it runs. The
// first start (storage not initialised) initialises it with a single Shamir
// key, writes DIR/unseal-key, unseals, does the dev set-up above and then
// writes DIR/root-token; later starts unseal with DIR/unseal-key and use
// DIR/root-token (checked to be still valid), without any set-up: secret/ and
// everything else persist. Once unsealed, sys/seal and sys/unseal (with the
// key in DIR/unseal-key) seal and unseal it over the HTTP API.
//
// Compiled-in backends: secrets kv (v1 and v2), database (with the
// postgresql-database-plugin) and pki, auth approle, userpass and cert,
// audit file.
package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	"github.com/hashicorp/vault/sdk/physical"
	physFile "github.com/hashicorp/vault/sdk/physical/file"
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
	storage := flag.String("storage", "", "keep Vault's data (file storage) in `DIR`/data and the unseal key and root token in DIR/unseal-key and DIR/root-token, so restarts keep them (default: in memory)")
	flag.Parse()

	logger := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "vault",
		Level:  hclog.LevelFromString(*logLevel),
		Output: os.Stderr,
	})
	if err := run(logger, *addr, *tokenFile, *rootID, !*noKV, *tlsCert, *tlsKey, *storage); err != nil {
		logger.Error("vaultserver failed", "error", err)
		os.Exit(1)
	}
}

func run(logger hclog.InterceptLogger, addr, tokenFile, rootID string, mountKV bool, tlsCert, tlsKey, storage string) error {
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
	var phys physical.Backend
	if storage == "" {
		phys, err = inmem.NewInmem(nil, logger.Named("storage"))
		if err != nil {
			return err
		}
	} else {
		if storage, err = filepath.Abs(storage); err != nil {
			return fmt.Errorf("-storage: %w", err)
		}
		if err := os.MkdirAll(filepath.Join(storage, "data"), 0o700); err != nil {
			return fmt.Errorf("-storage: %w", err)
		}
		lock, err := lockDir(storage)
		if err != nil {
			return err
		}
		defer lock.Close()
		phys, err = physFile.NewFileBackend(map[string]string{"path": filepath.Join(storage, "data")}, logger.Named("storage"))
		if err != nil {
			return err
		}
	}
	coreConfig := &vault.CoreConfig{
		Physical:           phys,
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

	var rootToken string
	if storage == "" {
		rootToken, err = initDev(core, rootID, mountKV)
	} else {
		rootToken, err = openStorage(logger, core, storage, rootID, mountKV)
	}
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
	res, err := initialize(core)
	if err != nil {
		return "", err
	}
	if err := unseal(core, res.SecretShares[0]); err != nil {
		return "", err
	}
	return devSetup(core, res.RootToken, rootID, mountKV)
}

// openStorage initialises (first start) or unseals (later starts) the core on
// the file storage in dir, like initDev plus the files that let later starts
// unseal it: dir/unseal-key (written right after initialising, before
// anything else can fail) and dir/root-token (written last, once the dev
// set-up is done: a first start cut short leaves no root-token, and later
// starts refuse such a dir). It returns the root token.
func openStorage(logger hclog.Logger, core *vault.Core, dir, rootID string, mountKV bool) (string, error) {
	keyFile := filepath.Join(dir, "unseal-key")
	rootFile := filepath.Join(dir, "root-token")
	inited, err := core.Initialized(context.Background())
	if err != nil {
		return "", fmt.Errorf("storage %s: %w", dir, err)
	}
	if !inited {
		if _, err := os.Stat(keyFile); err == nil {
			logger.Warn("storage data is not initialised: initialising it afresh and replacing the old unseal key and root token", "dir", dir)
		}
		if err := os.Remove(rootFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		res, err := initialize(core)
		if err != nil {
			return "", err
		}
		key := res.SecretShares[0]
		if err := writeFileAtomic(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n")); err != nil {
			return "", fmt.Errorf("write unseal key: %w", err)
		}
		if err := unseal(core, key); err != nil {
			return "", err
		}
		root, err := devSetup(core, res.RootToken, rootID, mountKV)
		if err != nil {
			return "", err
		}
		if err := writeFileAtomic(rootFile, []byte(root+"\n")); err != nil {
			return "", fmt.Errorf("write root token: %w", err)
		}
		logger.Info("initialised new persistent storage", "dir", dir)
		return root, nil
	}

	key, err := readKey(keyFile)
	if err != nil {
		return "", fmt.Errorf("storage %s is initialised but its unseal key is unusable (remove the directory to start afresh): %w", dir, err)
	}
	b, err := os.ReadFile(rootFile)
	if err != nil {
		return "", fmt.Errorf("storage %s is initialised but its root token is unusable (first start cut short? remove the directory to start afresh): %w", dir, err)
	}
	root := strings.TrimSpace(string(b))
	if root == "" {
		return "", fmt.Errorf("storage %s: %s is empty (remove the directory to start afresh)", dir, rootFile)
	}
	if rootID != "" && rootID != root {
		return "", fmt.Errorf("-dev-root-token-id %q differs from the root token of storage %s, set on its first start (in %s): drop the flag or use a new -storage directory", rootID, dir, rootFile)
	}
	if err := unseal(core, key); err != nil {
		return "", err
	}
	resp, err := core.HandleRequest(namespace.RootContext(context.Background()), &logical.Request{
		Operation:   logical.ReadOperation,
		ClientToken: root,
		Path:        "auth/token/lookup-self",
	})
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	if err != nil {
		return "", fmt.Errorf("the root token in %s is not valid any more (revoked?): %w", rootFile, err)
	}
	logger.Info("unsealed persistent storage", "dir", dir)
	return root, nil
}

// readKey reads an unseal key file: base64 (as written by openStorage) or hex,
// the two encodings sys/unseal accepts.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(b))
	if key, err := base64.StdEncoding.DecodeString(s); err == nil && len(key) > 0 {
		return key, nil
	}
	if key, err := hex.DecodeString(s); err == nil && len(key) > 0 {
		return key, nil
	}
	return nil, fmt.Errorf("%s: neither base64 nor hex", path)
}

// lockDir takes an exclusive lock on dir/lock for the life of the process, so
// two servers never share one storage directory.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-storage: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("-storage %s is in use by another vaultserver (%s is locked): %w", dir, path, err)
	}
	return f, nil
}

// initialize initialises the core with a single Shamir key share.
func initialize(core *vault.Core) (*vault.InitResult, error) {
	ctx := namespace.RootContext(context.Background())
	res, err := core.Initialize(ctx, &vault.InitParams{
		BarrierConfig:    &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
		RecoveryConfig:   &vault.SealConfig{SecretShares: 1, SecretThreshold: 1},
		LegacyShamirSeal: true,
	})
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	return res, nil
}

// unseal unseals the core with key and waits until it is active.
func unseal(core *vault.Core, key []byte) error {
	unsealed, err := core.Unseal(key)
	if err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	if !unsealed {
		return errors.New("core still sealed after unseal")
	}
	// Wait until the core is active (post-unseal setup done).
	for deadline := time.Now().Add(30 * time.Second); ; {
		if standby, err := core.Standby(); err == nil && !standby && !core.Sealed() {
			if leader, _, _, err := core.Leader(); err == nil && leader || errors.Is(err, vault.ErrHANotEnabled) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("core did not become active")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// devSetup does the rest of `vault server -dev`'s set-up on an unsealed core
// whose root token is root: the root token with a fixed ID and KV v2 at
// secret/. It returns the root token to use.
func devSetup(core *vault.Core, root, rootID string, mountKV bool) (string, error) {
	ctx := namespace.RootContext(context.Background())
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
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
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
	// Durable before the rename: a crash must not leave an empty unseal key.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
