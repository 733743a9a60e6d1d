//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// persistentVault is e2e/vault.sh's Vault with storage on disk
// (VAULT_STORAGE), on a port of its own: unlike the dev Vault, it keeps its
// tokens across a restart and can be sealed and unsealed.
type persistentVault struct {
	port, storage string
}

const persistentVaultPort = "8202"

// sh runs e2e/vault.sh for this Vault and returns what it printed.
func (v persistentVault) sh(args ...string) (string, error) {
	cmd := exec.Command("./vault.sh", args...)
	cmd.Env = append(os.Environ(), "VAULT_DEV_PORT="+v.port, "VAULT_STORAGE="+v.storage)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return "", &shError{args, string(ee.Stderr)}
	}
	return strings.TrimSpace(string(out)), err
}

type shError struct {
	args   []string
	stderr string
}

func (e *shError) Error() string {
	return "vault.sh " + strings.Join(e.args, " ") + ": " + strings.TrimSpace(e.stderr)
}

func (v persistentVault) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := v.sh(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testVaultSealedAndRestarted points the plugin at a Vault with storage on
// disk, and seals, unseals and restarts that Vault under it: a task that
// starts while Vault is sealed fails with a sentence naming the seal (not
// the policies or labels), the running task keeps its file, and once Vault
// is unsealed, or restarted with its storage, the next tasks are served by
// the same plugin process, with no restart and no new token.
func testVaultSealedAndRestarted(t *testing.T, f *fixture) {
	storage, err := filepath.Abs(filepath.Join("..", ".e2e", "vault-storage-"+run))
	if err != nil {
		t.Fatal(err)
	}
	v := persistentVault{port: persistentVaultPort, storage: storage}
	addr := v.must(t, "start")
	t.Cleanup(func() {
		if _, err := v.sh("stop"); err != nil {
			t.Log(err)
		}
		os.RemoveAll(storage)
	})
	tokenFile, err := filepath.Abs(filepath.Join("..", ".e2e", "vault-token-"+v.port))
	if err != nil {
		t.Fatal(err)
	}
	p := vaultFixtureAt(t, addr, tokenFile)
	t.Cleanup(func() { f.issue(p.issued...) })

	// The plugin on the persistent Vault, and back to the dev Vault after.
	t.Cleanup(func() { configurePlugin(t, f.pluginToken, f.role) })
	configurePluginAt(t, addr, p.pluginToken, p.role)

	secret := run + "_persist"
	createDriverSecret(t, secret, map[string]string{"vault.path": "secret/" + run + "/db", "vault.field": "password"})
	services := []string{run + "-before-seal", run + "-while-sealed", run + "-after-restart"}
	for _, s := range services {
		p.servicePolicy(t, s, "secret/data/"+run+"/*")
	}
	served := func(service string) string {
		t.Helper()
		c := waitRunning(t, service, 1)[0]
		if got := readSecretFile(t, c, secret); string(got) != p.v2["password"] {
			t.Fatalf("service %s: /run/secrets/%s differs from Vault (%d bytes)", service, secret, len(got))
		}
		return c
	}
	createService(t, services[0], nil, secret)
	running := served(services[0])
	pid := pluginProcess(t)

	// Sealed: a task that starts now fails, and its line names the seal.
	mark := logMark(t)
	v.must(t, "seal")
	createService(t, services[1], nil, secret)
	waitForLogLine(t, mark, inDockerdLog("Vault is sealed, so the plugin cannot create a token for service "+services[1]+": unseal it (vault operator unseal)"))
	if got := readSecretFile(t, running, secret); string(got) != p.v2["password"] {
		t.Errorf("the task that ran before the seal lost its file")
	}
	unsealed := time.Now()
	v.must(t, "unseal")
	served(services[1])
	t.Logf("first task served %s after the unseal (swarm's restart delay included)", time.Since(unsealed).Round(100*time.Millisecond))

	// Restarted with its storage: the plugin's token is still Vault's, and
	// the same plugin process serves the next task.
	restarted := time.Now()
	v.must(t, "restart")
	createService(t, services[2], nil, secret)
	served(services[2])
	t.Logf("a new task served %s after Vault's restart", time.Since(restarted).Round(100*time.Millisecond))
	if now := pluginProcess(t); now != pid {
		t.Errorf("the plugin process changed (%s, then %s): the faults should not have restarted it", pid, now)
	}
	if log := logSince(t, mark); strings.Contains(log, inDockerdLog("logged in to Vault")) {
		t.Logf("the plugin logged in again during the faults (allowed: its token file still holds a valid token)")
	}
}

// pluginProcess is the pid of the plugin's process, as the engine runs it
// (the newest process whose command is the plugin's binary).
func pluginProcess(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("pgrep", "-n", "-f", "^/swarmvault").Output()
	if err != nil {
		t.Fatalf("no plugin process: %v", err)
	}
	return strings.TrimSpace(string(out))
}
