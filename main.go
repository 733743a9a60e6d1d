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
	engine, engineErr := swarm.Dial()
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

	tracker, loop := taskLifecycle(cfg, engine, engineErr, client, log)
	if loop != nil && m != nil {
		loop.Observe(m)
	}
	if loop != nil {
		// It stops with ctx, before the plugin's token is revoked.
		go loop.Run(ctx)
	}

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
		ReuseCacheTTL: cfg.ReuseCacheTTL,
		Reauth:        tokens,
		AllowedTypes:  cfg.AllowedTypes,
		Tracker:       tracker,
		Rotation:      engineErr == nil,
		Lifecycle:     loop != nil,
		Observer:      observer,
	})
	if engineErr == nil {
		// Rotation needs the Docker socket: it compares Vault's versions
		// with the tasks' ages.
		rot := lifecycle.NewRotator(engine, p, log)
		rot.Interval, rot.Timeout = cfg.RotationInterval, cfg.Timeout
		if m != nil {
			rot.Observe(m)
		}
		if t, ok := tracker.(*lifecycle.Tracker); ok && loop != nil {
			// Hashes of values without versions, kept under STATE_PATH;
			// the tasks' records tell static reads from credentials.
			rot.State, rot.Reads = lifecycle.NewStore(client, cfg.StatePath), t
		}
		go rot.Run(ctx)
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
	<-runDone
	tokens.Logout()
	return err
}

// taskLifecycle sets up what the Docker socket and STATE_PATH allow: with
// the socket, repeated fetches for started tasks are refused; with both,
// the leader renews and revokes task credentials. Whatever is missing is
// one warning, since credentials then live for their TTL.
func taskLifecycle(cfg config, engine *swarm.Engine, engineErr error, client *api.Client, log logrus.FieldLogger) (provider.Tracker, *lifecycle.Loop) {
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
	loop := lifecycle.NewLoop(tracker, engine, client, log)
	loop.Interval = cfg.LifecycleInterval
	loop.Timeout = cfg.Timeout
	return tracker, loop
}
