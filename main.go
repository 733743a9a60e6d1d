// Command swarmvault is a Docker managed plugin that serves Swarm's
// secretprovider interface from HashiCorp Vault: a secret created with
// --driver vault and a vault.path label is read from Vault for each task.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
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

	"github.com/swarmvault/swarmvault/check"
	"github.com/swarmvault/swarmvault/lifecycle"
	"github.com/swarmvault/swarmvault/metrics"
	"github.com/swarmvault/swarmvault/provider"
	"github.com/swarmvault/swarmvault/swarm"
	"github.com/swarmvault/swarmvault/vaultauth"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check" {
		// The compose checker for operators and CI: the plugin's own
		// parsers, without serving anything.
		os.Exit(check.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	if err := realMain(); err != nil {
		// stderr reaches the dockerd log at error level, one entry per line:
		// each line carries the prefix so that it reads alone there.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(os.Stderr, "swarmvault: %s\n", line)
		}
		os.Exit(1)
	}
}

func realMain() error {
	socket := flag.String("socket", provider.SocketPath, "Unix socket to serve the plugin API on")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until the plugin stops (for bench/)")
	// plugin/config.json passes false: dockerd stamps every line it logs
	// for a plugin, and a second time in the text would only be noise.
	logTimestamps := flag.Bool("log-timestamps", true, "start text log lines with their time")
	dockerSocket := flag.String("docker-socket", swarm.Socket, "Docker socket to use, for tests and the bench harness (the managed plugin always uses its docker-socket mount, the default)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		// Each line names one setting; docker plugin set works only while the
		// plugin is disabled, which it stays after this exit.
		return err
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, *logTimestamps, os.Stdout, os.Stderr)
	for _, w := range cfg.warnings() {
		log.Warn(w)
	}

	var m *metrics.Metrics
	var countCalls func(http.RoundTripper) http.RoundTripper
	if cfg.MetricsAddr != "" {
		m = metrics.New()
		countCalls = m.Transport
	}
	client, err := cfg.vaultClient(countCalls)
	if err != nil {
		return err
	}
	// The Docker socket is optional: the helper bootstrap and the task
	// lifecycle need it, and each says so when it is missing.
	engine, engineErr := swarm.Dial(*dockerSocket)
	auth, err := vaultauth.New(cfg.Auth, func() (vaultauth.SecretSource, error) {
		if engineErr != nil {
			return nil, fmt.Errorf("VAULT_AUTH_METHOD=helper needs the Docker socket: %w", engineErr)
		}
		return engine.HelperReader(cfg.HelperService, cfg.HelperSecret)
	})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The token's one owner. Start-up does not wait for a login: the engine
	// restores plugins at boot, maybe before Vault is up, and a plugin that
	// exits then stays down; until a login succeeds, requests wait for it
	// up to their deadline and then fail with the reason.
	tokens := vaultauth.NewManager(client, auth, log)
	// A login makes a few Vault calls, and the helper's some Docker calls.
	tokens.LoginTimeout = 3 * cfg.Timeout
	// A replaced token's read tokens (batch, its children) die with it:
	// revoke it only once the longest of them has expired.
	tokens.RevokeDelay = provider.ReadTokenTTL(cfg.Timeout)
	if m != nil {
		method := cfg.Auth.Method
		if method == "" {
			method = "token"
		}
		tokens.Logins = func(ok bool) { m.Login(method, ok) }
		m.TokenTTL(tokens.TTLLeft)
		go func() {
			if err := m.Serve(ctx, cfg.MetricsAddr, tokens.Ready); err != nil {
				log.Errorf("metrics: %v: /metrics, /healthz and /readyz are not served", err)
			}
		}()
	}
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		tokens.Run(ctx)
	}()

	// The leader side's one rollout guard: the loop (credentials near their
	// max TTL) and the rotator (a changed value) both roll through it.
	rollouts := lifecycle.NewRollouts(engine, log)
	tracker, loop := taskLifecycle(cfg, engine, engineErr, client, rollouts, log)
	var observer provider.Observer
	if m != nil {
		observer = m
	}
	p := provider.New(client, log, provider.Options{
		Timeout:       cfg.Timeout,
		Policies:      cfg.Policies,
		TokenRole:     cfg.TokenRole,
		TokenTTL:      cfg.TokenTTL,
		TokenMaxTTL:   cfg.TokenMaxTTL,
		WrapTTL:       cfg.WrapTTL,
		WrapMaxTTL:    cfg.WrapMaxTTL,
		ReuseCacheTTL: cfg.ReuseCacheTTL,
		Reauth:        tokens,
		AllowedTypes:  cfg.AllowedTypes,
		Tracker:       tracker,
		Rotation:      engineErr == nil,
		Lifecycle:     loop != nil,
		Observer:      observer,
	})
	// The leader side: while this manager leads, the loop renews and
	// revokes task credentials and the rotator rolls the services of
	// changed secrets, through one rollout guard. It stops with ctx, and is
	// waited for before the plugin's token is revoked.
	leaderDone := make(chan struct{})
	if engineErr == nil {
		leaderSide(ctx, cfg, engine, rollouts, tracker, loop, p, client, m, log, leaderDone)
	} else {
		close(leaderDone)
	}
	srv := provider.NewServer(p)
	l, err := provider.Listen(*socket)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	log.WithFields(logrus.Fields{"version": version, "vault_addr": cfg.VaultAddr, "socket": *socket}).Info("swarmvault serving")

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
	<-leaderDone
	<-runDone
	tokens.Logout()
	return err
}

// leaderSide starts the leadership watcher with the terms the Docker socket
// and STATE_PATH allow: the rotator always (it needs the socket), the loop
// with STATE_PATH. done is closed once the watcher and its terms returned.
func leaderSide(ctx context.Context, cfg config, engine *swarm.Engine, rollouts *lifecycle.Rollouts, tracker provider.Tracker,
	loop *lifecycle.Loop, p *provider.Provider, client *api.Client, m *metrics.Metrics, log logrus.FieldLogger, done chan<- struct{}) {
	rot := lifecycle.NewRotator(engine, p, rollouts, log)
	rot.Interval, rot.Timeout = cfg.RotationInterval, cfg.Timeout
	terms := []lifecycle.Term{rot}
	var t *lifecycle.Tracker
	if loop != nil {
		t = tracker.(*lifecycle.Tracker)
		// Hashes of values without versions, kept under STATE_PATH; the
		// tasks' records tell static reads from credentials.
		rot.State, rot.Reads = lifecycle.NewStore(client, cfg.StatePath), t
		terms = append(terms, loop)
	}
	w := lifecycle.NewWatcher(engine, log, terms...)
	w.Poll, w.Timeout = min(lifecycle.DefaultLeaderPoll, cfg.LifecycleInterval), cfg.Timeout
	if t != nil {
		w.Ended = t.Forget
	}
	if m != nil {
		rollouts.Observer = m
		w.Leading = m.Leading
		if loop != nil {
			loop.Observer = m
		}
	}
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		if loop != nil {
			wg.Add(1)
			go func() { defer wg.Done(); loop.CheckStore(ctx) }()
		}
		w.Run(ctx)
		wg.Wait()
	}()
}

// taskLifecycle sets up what the Docker socket and STATE_PATH allow: with
// the socket, repeated fetches for started tasks are refused; with both,
// the leader renews and revokes task credentials. Whatever is missing is
// one warning, since credentials then live for their TTL.
func taskLifecycle(cfg config, engine *swarm.Engine, engineErr error, client *api.Client, rollouts *lifecycle.Rollouts, log logrus.FieldLogger) (provider.Tracker, *lifecycle.Loop) {
	const ttlOnly = "task credentials (vault.type=token, read, write) live for their TTL (TOKEN_TTL) whatever happens to their task"
	switch {
	case engineErr != nil && cfg.StatePath != "":
		log.Warnf("task lifecycle off: STATE_PATH is set but %v; %s", engineErr, ttlOnly)
		return nil, nil
	case engineErr != nil:
		log.Warnf("task lifecycle off (it needs STATE_PATH and the Docker socket): %s", ttlOnly)
		return nil, nil
	case cfg.StatePath == "":
		log.Warnf("task lifecycle off: STATE_PATH is not set; %s", ttlOnly)
		return lifecycle.NewTracker(engine, nil, log), nil
	}
	tracker := lifecycle.NewTracker(engine, lifecycle.NewStore(client, cfg.StatePath), log)
	creds := lifecycle.NewVaultCredentials(client)
	loop := lifecycle.NewLoop(tracker, engine, creds, rollouts, log)
	loop.Interval, loop.Timeout, loop.Ready = cfg.LifecycleInterval, cfg.Timeout, creds.Ready
	return tracker, loop
}
