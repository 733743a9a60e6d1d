//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
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

// testPluginTokenRevoked revokes the plugin's own token behind its back.
// With a token file, the next task fails with a line that names the file
// to rotate, and the plugin serves again once the file holds a new token,
// without a restart. With AppRole, the plugin logs in again by itself and
// the next task is served.
func testPluginTokenRevoked(t *testing.T, f *fixture) {
	// configurePlugin sets VAULT_AUTH_METHOD=token again.
	t.Cleanup(func() { configurePlugin(t, f.pluginToken, f.role) })
	secret := run + "_revoked"
	createDriverSecret(t, secret, map[string]string{"vault.path": "secret/" + run + "/db", "vault.field": "password"})
	served := func(service string) string {
		t.Helper()
		f.servicePolicy(t, service, "secret/data/"+run+"/*")
		createService(t, service, nil, secret)
		c := waitRunning(t, service, 1)[0]
		if got := readSecretFile(t, c, secret); string(got) != f.v2["password"] {
			t.Fatalf("service %s: /run/secrets/%s differs from Vault (%d bytes)", service, secret, len(got))
		}
		return c
	}

	t.Run("token file: the next task names the file to rotate; a new token in it serves again", func(t *testing.T) {
		first := f.newPluginToken(t)
		configurePlugin(t, first, f.role)
		running := served(run + "-tok-before")
		mark := logMark(t)
		if err := f.root.Auth().Token().RevokeOrphan(first); err != nil {
			t.Fatal(err)
		}
		failing := run + "-tok-revoked"
		f.servicePolicy(t, failing, "secret/data/"+run+"/*")
		createService(t, failing, nil, secret)
		waitForLogLine(t, mark, inDockerdLog("Vault does not accept the plugin's token (VAULT_TOKEN_FILE /run/swarmvault/token)"))
		// The operator rotates the file; the plugin reads it again.
		dir, _ := filepath.Abs(filepath.Join("..", ".e2e", "credentials"))
		rotated := time.Now()
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(f.newPluginToken(t)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := waitRunning(t, failing, 1)[0]
		if got := readSecretFile(t, c, secret); string(got) != f.v2["password"] {
			t.Fatalf("after the rotation, the task got a different value")
		}
		t.Logf("served %s after the token file was rotated", time.Since(rotated).Round(100*time.Millisecond))
		if got := readSecretFile(t, running, secret); string(got) != f.v2["password"] {
			t.Errorf("the running task lost its file")
		}
	})

	t.Run("AppRole: the plugin logs in again by itself and the next task is served", func(t *testing.T) {
		mount := run + "-approle"
		if err := f.root.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.root.Sys().DisableAuth(mount) })
		role := "auth/" + mount + "/role/plugin"
		if _, err := f.root.Logical().Write(role, map[string]any{"token_policies": f.pluginPolicy, "token_ttl": "1h"}); err != nil {
			t.Fatal(err)
		}
		rid, err := f.root.Logical().Read(role + "/role-id")
		if err != nil {
			t.Fatal(err)
		}
		sid, err := f.root.Logical().Write(role+"/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		roleID, secretID := rid.Data["role_id"].(string), sid.Data["secret_id"].(string)
		f.issue(roleID, secretID)
		dir, _ := filepath.Abs(filepath.Join("..", ".e2e", "credentials"))
		for name, v := range map[string]string{"role-id": roleID, "secret-id": secretID} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		setPlugin(t, "credentials.source="+dir, "docker-socket.source=/dev/null", "VAULT_AUTH_METHOD=approle",
			"VAULT_AUTH_MOUNT="+mount, "VAULT_ROLE_ID_FILE=/run/swarmvault/role-id", "VAULT_SECRET_ID_FILE=/run/swarmvault/secret-id",
			"VAULT_SECRET_ID_WRAPPED=false", "VAULT_SECRET_ID_REMOVE=false", "TOKEN_ROLE="+f.role, "LOG_LEVEL=debug")
		served(run + "-ar-before")
		// Out of band: every token the role's logins made is revoked.
		mark := logMark(t)
		revoked := revokeLoginTokens(t, f, mount)
		if revoked == 0 {
			t.Fatal("found no token of the AppRole's logins to revoke")
		}
		served(run + "-ar-after")
		if !strings.Contains(logSince(t, mark), "logged in to Vault") {
			t.Error("the plugin served after the revocation without a new login: was its token revoked?")
		}
	})
}

// revokeLoginTokens revokes, by accessor, every token Vault made for a login
// at the auth mount, as an operator revoking the plugin's token would.
func revokeLoginTokens(t *testing.T, f *fixture, mount string) int {
	t.Helper()
	list, err := f.root.Logical().List("auth/token/accessors")
	if err != nil || list == nil {
		t.Fatalf("listing token accessors: %v", err)
	}
	n := 0
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		acc, _ := k.(string)
		s, err := f.root.Auth().Token().LookupAccessor(acc)
		if err != nil || s == nil {
			continue
		}
		if path, _ := s.Data["path"].(string); strings.HasPrefix(path, "auth/"+mount+"/login") {
			if err := f.root.Auth().Token().RevokeAccessor(acc); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}
