package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
	"github.com/hashicorp/vault/api"
	"github.com/sirupsen/logrus"

	"github.com/swarmvault/swarmvault/internal/settings"
	"github.com/swarmvault/swarmvault/swarm"
)

// buildBinary builds the plugin binary for a process test, with the
// extra go build flags given.
func buildBinary(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "swarmvault")
	out, err := exec.Command("go", append(append([]string{"build"}, flags...), "-o", bin, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// noDocker is a Docker socket that does not exist: a process test runs
// the binary on the host, whose Docker engine is not the test's.
func noDocker(t *testing.T) string { return filepath.Join(t.TempDir(), "no-docker.sock") }

func TestProcessRefusesBadSettingsOneLineEach(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "-socket", filepath.Join(t.TempDir(), "plugin.sock"), "-docker-socket", noDocker(t))
	cmd.Env = []string{"LOG_LEVEL=loud", "VAULT_TOKEN=x"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	// dockerd logs each stderr line as its own entry: each must read alone.
	want := "swarmvault: VAULT_ADDR is not set: docker plugin set <plugin> VAULT_ADDR=https://vault.example.com:8200\n" +
		"swarmvault: LOG_LEVEL=loud is not a level: use debug, info, warn or error\n" +
		"swarmvault: TOKEN_ROLE is not set: task tokens (vault.type=token, read, write) are made with auth/token/create-orphan and KV read tokens with auth/token/create, which give a policy the plugin's token does not hold only if that token has sudo, and then bound their policies by nothing but POLICY_TEMPLATE: create a token role (docs/vault-setup.md) and docker plugin set <plugin> TOKEN_ROLE=<role>, or ALLOW_NO_TOKEN_ROLE=true to accept that\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
}

// The binary's commands, a typo and a bad flag exit at once, as said, with
// settings that would serve but for LOG_LEVEL: a process that read them
// would exit 1 naming LOG_LEVEL, so none of these reads them, and none can
// reach the socket (nor the Docker engine at the default --docker-socket).
func TestProcessCommandsNeverServe(t *testing.T) {
	bin := buildBinary(t, "-ldflags", "-X main.version=v0.0.0-test")
	dir := t.TempDir()
	sock := filepath.Join(dir, "plugin.sock")
	usageStart := "swarmvault: HashiCorp Vault secrets for Docker Swarm services."
	for _, tt := range []struct {
		args                                 []string
		code                                 int
		stdoutPrefix, stderrIs, stderrPrefix string
	}{
		{args: []string{"version"}, stdoutPrefix: "swarmvault v0.0.0-test\ncommit: "},
		{args: []string{"--version"}, stdoutPrefix: "swarmvault v0.0.0-test\ncommit: "},
		{args: []string{"-version"}, stdoutPrefix: "swarmvault v0.0.0-test\ncommit: "},
		{args: []string{"version", "--format", "json"}, stdoutPrefix: `{"version":"v0.0.0-test","commit":`},
		{args: []string{"help"}, stdoutPrefix: usageStart},
		{args: []string{"--help"}, stdoutPrefix: usageStart},
		{args: []string{"-h"}, stdoutPrefix: usageStart},
		{args: []string{"help", "check"}, stdoutPrefix: "Usage: swarmvault check"},
		{args: []string{"chek"}, code: 2, stderrIs: `swarmvault: unknown command "chek": did you mean check? (swarmvault help lists the commands)` + "\n"},
		{args: []string{"--socket", sock, "--bogus"}, code: 2, stderrPrefix: "swarmvault: flag provided but not defined: --bogus\n\n" + usageStart},
		{args: []string{"--socket", sock, "chek"}, code: 2},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Env = []string{"VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN=process-test-token", "ALLOW_NO_TOKEN_ROLE=true", "LOG_LEVEL=loud"}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr.String())
			}
			if took > time.Second {
				t.Errorf("took %s to exit", took)
			}
			if strings.Contains(stderr.String(), "LOG_LEVEL") {
				t.Errorf("the settings were read:\n%s", stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.stdoutPrefix) {
				t.Errorf("stdout:\n%s\nwant it to start with %q", stdout.String(), tt.stdoutPrefix)
			}
			if tt.code != 0 && stdout.Len() != 0 {
				t.Errorf("a refusal printed on stdout:\n%s", stdout.String())
			}
			if !strings.HasPrefix(stderr.String(), tt.stderrPrefix) {
				t.Errorf("stderr:\n%s\nwant it to start with %q", stderr.String(), tt.stderrPrefix)
			}
			if tt.stderrIs != "" && stderr.String() != tt.stderrIs {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tt.stderrIs)
			}
			if tt.code == 0 && stderr.Len() != 0 {
				t.Errorf("stderr:\n%s", stderr.String())
			}
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the plugin socket exists (%v)", err)
			}
		})
	}
}

func TestProcessServesAndStopsOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	sock := filepath.Join(t.TempDir(), "plugin.sock")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("process-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: Vault is "down", which must not stop the
	// plugin from serving (the engine may restore it before Vault is up).
	cmd := exec.Command(bin, "-socket", sock, "-docker-socket", noDocker(t))
	// No TOKEN_ROLE, accepted: the start warns of it.
	cmd.Env = []string{"VAULT_ADDR=http://127.0.0.1:1", "VAULT_TOKEN_FILE=" + tokenFile, "LOG_LEVEL=debug", "ALLOW_NO_TOKEN_ROLE=true"}
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err = client.Post("http://plugin/SecretProvider.GetSecret", "application/json",
			strings.NewReader(`{"SecretName":"db_pw","SecretLabels":{"vault.path":"secret/app/db"},"ServiceName":"app","TaskID":"t1","NodeID":"n1"}`))
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the plugin never answered on its socket: %v\nstderr:\n%s", err, stderr.String())
	}
	var r secrets.Response
	json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if !strings.HasPrefix(r.Err, "secret db_pw: cannot reach Vault to create a token for service app: dial tcp 127.0.0.1:1: connect: connection refused") {
		t.Errorf("Err = %q", r.Err)
	}

	// The login runs on its own goroutine: wait for its line (the request
	// above did not), rather than hope it came before SIGTERM.
	waitFor(t, &stderr, `msg="Vault login failed"`, 10*time.Second)
	// Vault is down, and the login says so, not that the token is refused.
	if want := "cannot reach Vault at http://127.0.0.1:1 to check the plugin's token (dial tcp 127.0.0.1:1: connect: connection refused): check VAULT_ADDR and that Vault is up"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %s:\n%s", want, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	if !strings.Contains(stdout.String(), `msg="swarmvault serving"`) || !strings.Contains(stdout.String(), `msg="shutting down"`) {
		t.Errorf("stdout lacks start/stop lines:\n%s", stdout.String())
	}
	// Warned at every start, on stderr (dockerd's error level).
	if !strings.Contains(stderr.String(), `level=warning msg="TOKEN_ROLE is not set (ALLOW_NO_TOKEN_ROLE=true): task tokens`) {
		t.Errorf("stderr lacks the TOKEN_ROLE warning:\n%s", stderr.String())
	}
	if strings.Contains(stdout.String()+stderr.String(), "process-test-token") {
		t.Error("the token is in the log")
	}
}

// syncBuffer is a bytes.Buffer that a process may write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until b holds want, failing the test after limit.
func waitFor(t *testing.T, b *syncBuffer, want string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); !strings.Contains(b.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s:\n%s", want, limit, b.String())
		}
	}
}

// What each combination of the Docker socket and STATE_PATH turns on, and
// the one warning at start when credentials will live for their TTL.
func TestTaskLifecycleSettings(t *testing.T) {
	client, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	engine := swarm.NewEngine(nil)
	for _, tt := range []struct {
		name           string
		statePath      string
		engineErr      error
		tracker, store bool
		warning        string
	}{
		{"socket and STATE_PATH", "secret/swarmvault/state", nil, true, true, ""},
		{"socket only", "", nil, true, false, "task lifecycle off: STATE_PATH is not set; task credentials (vault.type=token, read, write) live for their TTL (TOKEN_TTL) whatever happens to their task"},
		{"STATE_PATH only", "secret/swarmvault/state", swarm.ErrNoSocket, false, false, "task lifecycle off: STATE_PATH is set but the docker-socket mount is not set: docker plugin set <plugin> docker-socket.source=/var/run/docker.sock; task credentials"},
		{"neither", "", swarm.ErrNoSocket, false, false, "task lifecycle off (it needs STATE_PATH and the Docker socket): task credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := logrus.New()
			log.SetOutput(&logs)
			var e *swarm.Engine
			if tt.engineErr == nil {
				e = engine
			}
			tracker, store := taskLifecycle(settings.Config{StatePath: tt.statePath, LifecycleInterval: 7e9, Timeout: 3e9}, e, tt.engineErr, client, log)
			if (tracker != nil) != tt.tracker || (store != nil) != tt.store {
				t.Errorf("tracker %v, store %v", tracker != nil, store != nil)
			}
			if store != nil && store.Path() != tt.statePath {
				t.Errorf("store at %s", store.Path())
			}
			warnings := strings.Count(logs.String(), "level=warning")
			if tt.warning == "" && warnings != 0 || tt.warning != "" && (warnings != 1 || !strings.Contains(logs.String(), tt.warning)) {
				t.Errorf("log:\n%s\nwant one warning: %s", logs.String(), tt.warning)
			}
		})
	}
}
