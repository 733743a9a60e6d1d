// Command swarmvault is a Docker managed plugin that serves Swarm's
// secretprovider interface from HashiCorp Vault: a secret created with
// --driver vault and a vault.path label is read from Vault for each task.
//
// main wires the two paths of the program: the request path (the plugin
// socket, provider/) and the leader side (lifecycle/, on the manager that
// leads), both with the plugin's own Vault token (vaultauth/). cli.go reads
// the command line: the plugin (no command, as dockerd runs it), check,
// version and help.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"
	// Mozilla's CA roots, used only where the system has none: the plugin's
	// rootfs holds the binary alone, so that a build from the same commit
	// is the same plugin on any machine (a CA bundle copied from the build
	// machine would differ between machines).
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/swarmvault/swarmvault/bootstrap"
	"github.com/swarmvault/swarmvault/internal/settings"
	"github.com/swarmvault/swarmvault/lifecycle"
	"github.com/swarmvault/swarmvault/metrics"
	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
	"github.com/swarmvault/swarmvault/vaultauth"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	flags, code := cli(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if flags == nil {
		os.Exit(code)
	}
	if err := realMain(*flags); err != nil {
		// stderr reaches the dockerd log at error level, one entry per line:
		// each line carries the prefix so that it reads alone there.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(os.Stderr, "swarmvault: %s\n", line)
		}
		os.Exit(exitFailed)
	}
}

// realMain runs the plugin until SIGTERM (dockerd's plugin disable) or
// SIGINT, with the flags cli read.
func realMain(flags pluginFlags) error {
	stopProfile, err := startCPUProfile(flags.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()

	// Settings. Each bad one is a line of the error; docker plugin set
	// works only while the plugin is disabled, which it stays after this.
	cfg, err := settings.Load(os.Getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, flags.logTimestamps, os.Stdout, os.Stderr)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	m := metrics.New()
	client, err := cfg.VaultClient(m.Transport)
	if err != nil {
		return err
	}
	// The Docker socket is optional: the helper bootstrap, the refusal of
	// repeated fetches, rotation and the task lifecycle need it, and each
	// says so when it is missing.
	engine, dockerErr := swarm.Dial(flags.dockerSocket)

	// The plugin's own identity: the token's one owner. Start-up does not
	// wait for a login: the engine restores plugins at boot, maybe before
	// Vault is up, and a plugin that exits then stays down; until a login
	// succeeds, requests wait for it up to their deadline and then fail
	// with the reason.
	tokens, err := identity(cfg, client, engine, dockerErr, m, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		if err := m.Serve(ctx, cfg.MetricsAddr, tokens.Ready); err != nil {
			log.WithField("component", "metrics").Errorf("%v: /metrics, /healthz and /readyz are not served", err)
		}
	}()
	var background sync.WaitGroup
	background.Add(1)
	go func() { defer background.Done(); tokens.Run(ctx) }()

	// The request path: each task's secrets, read with a token of its own.
	tracker, store := taskLifecycle(cfg, engine, dockerErr, client, log)
	opts := cfg.Options()
	opts.Reauth, opts.Observer = tokens, m
	if tracker != nil {
		opts.Tracker = tracker
	}
	opts.Rotation, opts.Lifecycle = dockerErr == nil, store != nil
	p := provider.New(client, log, opts)

	// The leader side: while this manager leads, the loop renews and
	// revokes task credentials and the rotator rolls the services of
	// changed secrets. It stops with ctx, and is waited for before the
	// plugin's token is revoked.
	if dockerErr == nil {
		background.Add(1)
		go func() { defer background.Done(); leaderSide(ctx, cfg, engine, tracker, store, p, client, m, log) }()
	}

	srv := provider.NewServer(p)
	l, err := provider.Listen(flags.socket)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.WithFields(logrus.Fields{"version": version, "vault_addr": cfg.VaultAddr, "socket": flags.socket}).Info("swarmvault serving")

	select {
	case err := <-served:
		return fmt.Errorf("plugin socket closed: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Requests under way finish (each within VAULT_CLIENT_TIMEOUT); none
	// starts. Then the plugin's own token goes, if a login made it.
	waitCtx, cancel := context.WithTimeout(context.Background(), cfg.Timeout+time.Second)
	defer cancel()
	err = srv.Shutdown(waitCtx)
	background.Wait()
	tokens.Logout()
	return err
}

// identity makes the manager of the plugin's own token, logging in as
// VAULT_AUTH_METHOD says.
func identity(cfg settings.Config, client *api.Client, engine *swarm.Engine, dockerErr error, m *metrics.Metrics, log logrus.FieldLogger) (*vaultauth.Manager, error) {
	auth, err := vaultauth.New(cfg.Auth, func() (api.AuthMethod, error) {
		if dockerErr != nil {
			return nil, fmt.Errorf("VAULT_AUTH_METHOD=helper needs the Docker socket: %w", dockerErr)
		}
		return bootstrap.New(engine, bootstrap.Settings{
			Service: cfg.HelperService, Secret: cfg.HelperSecret,
			RoleIDFile: cfg.Auth.RoleIDFile, Mount: cfg.Auth.Mount,
		})
	})
	if err != nil {
		return nil, err
	}
	tokens := vaultauth.NewManager(client, auth, log)
	// A login makes a few Vault calls, and the helper's some Docker calls.
	tokens.LoginTimeout = 3 * cfg.Timeout
	// A replaced token's read tokens (batch, its children) die with it:
	// revoke it only once the longest of them has expired.
	tokens.RevokeDelay = provider.ReadTokenTTL(cfg.Timeout)
	tokens.Logins = func(ok bool) { m.Login(cfg.Auth.Method, ok) }
	m.TokenTTL(tokens.TTLLeft)
	return tokens, nil
}

// taskLifecycle sets up what the Docker socket and STATE_PATH allow: with
// the socket, a tracker that refuses repeated fetches for started tasks;
// with both, the store of the records the leader renews and revokes by.
// Whatever is missing is one warning, since credentials then live for
// their TTL.
func taskLifecycle(cfg settings.Config, engine *swarm.Engine, dockerErr error, client *api.Client, log logrus.FieldLogger) (*lifecycle.Tracker, *lifecycle.Store) {
	const ttlOnly = "task credentials (vault.type=token, read, write) live for their TTL (TOKEN_TTL) whatever happens to their task"
	switch {
	case dockerErr != nil && cfg.StatePath != "":
		log.Warnf("task lifecycle off: STATE_PATH is set but %v; %s", dockerErr, ttlOnly)
		return nil, nil
	case dockerErr != nil:
		log.Warnf("task lifecycle off (it needs STATE_PATH and the Docker socket): %s", ttlOnly)
		return nil, nil
	case cfg.StatePath == "":
		log.Warnf("task lifecycle off: STATE_PATH is not set; %s", ttlOnly)
		return lifecycle.NewTracker(engine, nil, log), nil
	}
	store := lifecycle.NewStore(client, cfg.StatePath)
	return lifecycle.NewTracker(engine, store, log), store
}

// leaderSide runs the leadership watcher until ctx ends, with the terms
// the settings allow: the rotator always (it needs only the Docker
// socket), the loop with STATE_PATH; both roll services through one
// rollout guard. It returns once the watcher, its terms and the start-up
// check of STATE_PATH have.
func leaderSide(ctx context.Context, cfg settings.Config, engine *swarm.Engine, tracker *lifecycle.Tracker, store *lifecycle.Store,
	p *provider.Provider, client *api.Client, m *metrics.Metrics, log logrus.FieldLogger) {
	rollouts := lifecycle.NewRollouts(engine, log)
	rollouts.Observer = m
	rot := lifecycle.NewRotator(engine, p, rollouts, log)
	rot.Interval, rot.Timeout = cfg.RotationInterval, cfg.Timeout
	terms := []lifecycle.Term{rot}
	var checked sync.WaitGroup
	if store != nil {
		// Hashes of values without versions, kept under STATE_PATH; the
		// tasks' records tell static reads from credentials.
		rot.State, rot.Reads = store, tracker
		creds := lifecycle.NewVaultCredentials(client)
		loop := lifecycle.NewLoop(tracker, engine, creds, rollouts, log)
		loop.Interval, loop.Timeout, loop.Workers, loop.Ready, loop.Observer = cfg.LifecycleInterval, cfg.Timeout, cfg.LifecycleConcurrency, creds.Ready, m
		loop.RotateAt = cfg.RotateAt
		terms = append(terms, loop)
		checked.Add(1)
		go func() { defer checked.Done(); loop.CheckStore(ctx) }()
	}
	w := lifecycle.NewWatcher(engine, log, terms...)
	w.Poll, w.Timeout, w.Leading = min(lifecycle.DefaultLeaderPoll, cfg.LifecycleInterval), cfg.Timeout, m.Leading
	if tracker != nil {
		w.Ended = tracker.Forget
	}
	w.Run(ctx)
	checked.Wait()
}

// startCPUProfile writes a CPU profile to file until the returned stop is
// called; with no file it does nothing.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return pprof.StopCPUProfile, nil
}
