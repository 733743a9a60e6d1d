//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
		dir, _ := filepath.Abs(filepath.Join("..", ".e2e", "credentials"))
		f.pluginAppRole(t, mount, dir)
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
	n, err := f.revokeLogins(mount)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// revokeLogins is revokeLoginTokens, with an error rather than a failed
// test (the fault campaign's Vault may be sealed meanwhile).
func (f *fixture) revokeLogins(mount string) (int, error) {
	n := 0
	err := f.eachToken(func(acc string, s *api.Secret) error {
		if path, _ := s.Data["path"].(string); strings.HasPrefix(path, "auth/"+mount+"/login") {
			if err := f.root.Auth().Token().RevokeAccessor(acc); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// eachToken calls each with the accessor and lookup of every token Vault
// holds (one gone meanwhile is skipped); an error when they cannot be
// listed, or each's first.
func (f *fixture) eachToken(each func(accessor string, s *api.Secret) error) error {
	list, err := f.root.Logical().List("auth/token/accessors")
	if err != nil || list == nil {
		return fmt.Errorf("listing token accessors: %v", err)
	}
	keys, _ := list.Data["keys"].([]any)
	for _, k := range keys {
		acc, _ := k.(string)
		s, err := f.root.Auth().Token().LookupAccessor(acc)
		if err != nil || s == nil {
			continue
		}
		if err := each(acc, s); err != nil {
			return err
		}
	}
	return nil
}

// pluginAppRole enables AppRole at mount (disabled at the end), with a role
// whose tokens have the plugin's policy, and writes its role-id and a
// secret-id to dir, as the plugin's credentials mount holds them.
func (f *fixture) pluginAppRole(t *testing.T, mount, dir string) {
	t.Helper()
	if err := f.root.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().DisableAuth(mount) })
	role := "auth/" + mount + "/role/plugin"
	if _, err := f.root.Logical().Write(role, map[string]any{"token_policies": f.pluginPolicy, "token_ttl": "1h", "token_max_ttl": "4h"}); err != nil {
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
	for name, v := range map[string]string{"role-id": roleID, "secret-id": secretID} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// pluginCounter is the value of one series of the plugin's /metrics
// (series as written there, e.g. `swarmvault_vault_requests_total{operation="read",status="429"}`),
// 0 when it has none yet.
func pluginCounter(t *testing.T, series string) float64 {
	t.Helper()
	code, body := httpGet(t, "http://"+metricsAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("the plugin's /metrics: %d %s", code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %q", line)
			}
			return n
		}
	}
	return 0
}

// rateLimit puts a rate limit quota of rate requests per interval on a
// request path of Vault's (a mount; a path in one, or with a trailing * the
// paths under it), removed at the end.
func (f *fixture) rateLimit(t *testing.T, name, path string, rate int, interval time.Duration) (remove func()) {
	t.Helper()
	if _, err := f.root.Logical().Write("sys/quotas/rate-limit/"+name, map[string]any{
		"path": path, "rate": rate, "interval": interval.String(),
	}); err != nil {
		t.Fatal(err)
	}
	remove = func() {
		if _, err := f.root.Logical().Delete("sys/quotas/rate-limit/" + name); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { f.root.Logical().Delete("sys/quotas/rate-limit/" + name) })
	return remove
}

// testRateLimited starts tasks against a real rate limit quota (HTTP
// 429) on the KV path they read: each task that meets it fails with a line
// that names the quota and what to do, the plugin makes no more calls than
// the tasks swarm starts (one refused read each: no retry storm), swarm's
// retries are served as the quota lets them, and once the quota is removed
// the next task is served at once.
func testRateLimited(t *testing.T, f *fixture) {
	path := "secret/" + run + "/limited/db"
	if _, err := f.root.Logical().Write("secret/data/"+run+"/limited/db", map[string]any{"data": map[string]any{"password": f.v2["password"]}}); err != nil {
		t.Fatal(err)
	}
	secret := run + "_limited"
	createDriverSecret(t, secret, map[string]string{"vault.path": path, "vault.field": "password"})
	service := run + "-limited"
	f.servicePolicy(t, service, "secret/data/"+run+"/*")
	const interval = 4 * time.Second
	remove := f.rateLimit(t, run+"-kv", "secret/data/"+run+"/limited/*", 1, interval)
	refused := `swarmvault_vault_requests_total{operation="read",status="429"}`
	before := pluginCounter(t, refused)

	mark := logMark(t)
	started := time.Now()
	createService(t, service, []string{"--replicas", "4"}, secret)
	waitForLogLine(t, mark, `Vault's rate limit quota refused the call (HTTP 429: request path "secret/data/`+run+`/limited/db": rate limit quota exceeded), so the plugin cannot read path `+path+`: raise the quota (vault read sys/quotas/rate-limit/<name>) or start fewer tasks at once; swarm retries the task`)
	for _, c := range waitRunningWithin(t, service, 4, 3*time.Minute) {
		if got := readSecretFile(t, c, secret); string(got) != f.v2["password"] {
			t.Fatalf("service %s: /run/secrets/%s differs from Vault (%d bytes)", service, secret, len(got))
		}
	}
	took := time.Since(started)
	calls := pluginCounter(t, refused) - before
	failed := len(strings.Fields(docker(t, "service", "ps", "-q", "--filter", "desired-state=shutdown", service)))
	// The rotator also reads the path, one call a ROTATION_INTERVAL.
	rotatorReads := int(took/rotationInterval) + 1
	t.Logf("4 tasks served in %s under a quota of 1 read per %s: %v reads refused, %d task attempts failed", took.Round(100*time.Millisecond), interval, calls, failed)
	if calls < 1 {
		t.Errorf("no refused read counted: did the quota apply?")
	}
	if int(calls) > failed+rotatorReads {
		t.Errorf("%v reads refused for %d failed task attempts and at most %d rotator reads: the plugin retries into a quota", calls, failed, rotatorReads)
	}

	// The quota removed: the next task is served at once.
	remove()
	healed := time.Now()
	next := run + "-after-limit"
	f.servicePolicy(t, next, "secret/data/"+run+"/*")
	createService(t, next, nil, secret)
	waitRunning(t, next, 1)
	t.Logf("first task served %s after the quota was removed", time.Since(healed).Round(100*time.Millisecond))
}

// testFaultsDuringRenewals runs a service whose tasks hold database users
// (a 30 s lease each, renewed by the leader at half of it) through two
// faults shorter than what is left of a lease: a rate limit quota that
// refuses every lease renewal, then PostgreSQL halted until renewals fail
// (and a task that starts meanwhile fails with Vault's words).
// During the quota, each round makes no more lease renewals after its first refusal, and says so;
// after each fault heals, the leases due are renewed (their expiry moves
// on), and the tasks' users log in throughout, except while PostgreSQL is
// down.
func testFaultsDuringRenewals(t *testing.T, f *fixture, dataRoot string) {
	const ttl = 30 * time.Second
	mount := f.dbFixture(t, ttl, time.Hour)
	service, secret := run+"-renewfaults", run+"_renewfaults"
	f.putPolicy(t, service, readRules(mount+"/creds/app"))
	createDriverSecret(t, secret, dbSecretLabels(mount))
	docker(t, "service", "create", "--detach", "--name", service, "--network", "host", "--replicas", "2",
		"--secret", "source="+secret+",target=db", pgImage, "-every", "1s")
	t.Cleanup(func() { tryDocker("service", "rm", service) })
	containers := waitRunning(t, service, 2)
	for _, c := range containers {
		f.dbUser(t, dataRoot, c)
	}
	leases := f.leasesUnder(t, mount+"/creds/app/")
	if len(leases) != 2 {
		t.Fatalf("STATE_PATH names %d leases of %s, want the 2 tasks'", len(leases), mount)
	}
	loginsSince := func(since time.Time) (ok, failed int) {
		for _, c := range containers {
			l := parsePgLog(docker(t, "logs", "--since", since.Format(time.RFC3339Nano), c))
			ok, failed = ok+l.ok, failed+l.fail
		}
		return ok, failed
	}
	// renewedAfter waits until every lease that was due when what healed
	// (15 s or less left) has been renewed: its expiry moved on. A lease
	// that is not due is left for later, and must not have expired.
	renewedAfter := func(what string, healed time.Time) {
		t.Helper()
		was := map[string]time.Time{}
		for _, l := range leases {
			was[l] = f.leaseExpiry(t, l)
		}
		waitFor(t, "the leases due to be renewed after "+what, ttl, func() (bool, string) {
			for _, l := range leases {
				now := f.leaseExpiry(t, l)
				if !now.After(was[l]) && time.Until(now) <= ttl/2 {
					return false, "a lease due since the heal still expires at " + now.Format(time.RFC3339)
				}
			}
			return true, ""
		})
		t.Logf("the leases due renewed %s after %s healed", time.Since(healed).Round(100*time.Millisecond), what)
	}

	// A quota that refuses lease renewals, from the first renewal due (15 s
	// before a lease ends) for 8 s, less than what is left.
	start := time.Now()
	refused := `swarmvault_vault_requests_total{operation="lease_renew",status="429"}`
	before := pluginCounter(t, refused)
	mark := logMark(t)
	// One name for every run: Vault refuses a second quota on one path,
	// and a run cut short leaves its own behind.
	remove := f.rateLimit(t, "swarmvault-e2e-lease-renew", "sys/leases/renew", 1, time.Hour)
	waitForLogLine(t, mark, `Vault's rate limit quota refused the call (HTTP 429: request path "sys/leases/renew": rate limit quota exceeded), so this round made no more lease renewals (`)
	first := time.Now()
	const window = 8 * time.Second
	time.Sleep(window)
	remove()
	healed := time.Now()
	calls := pluginCounter(t, refused) - before
	rounds := int(healed.Sub(first)/lifecycleInterval) + 2
	t.Logf("%v lease renewals refused by the quota over %s of refusals (at most %d rounds)", calls, healed.Sub(first).Round(100*time.Millisecond), rounds)
	if calls < 1 || int(calls) > rounds*len(leases) {
		t.Errorf("%v renewals refused in at most %d rounds of %d leases: want at least one, and at most one call per lease a round", calls, rounds, len(leases))
	}
	renewedAfter("the quota", healed)

	// PostgreSQL restarted: halted until a renewal due in the meantime has
	// failed (Vault's database engine cannot extend the user's VALID UNTIL
	// without it), and two rounds more; then renewals go on.
	pgDown := time.Now()
	mark = logMark(t)
	if out, err := exec.Command("./postgres.sh", "halt").CombinedOutput(); err != nil {
		t.Fatalf("postgres.sh halt: %v: %s", err, out)
	}
	// A task that starts meanwhile fails with Vault's words, which name
	// the database.
	starting := run + "-pgdown"
	f.putPolicy(t, starting, readRules(mount+"/creds/app"))
	docker(t, "service", "create", "--detach", "--name", starting, "--network", "host",
		"--secret", "source="+secret+",target=db", pgImage, "-every", "1s")
	t.Cleanup(func() { tryDocker("service", "rm", starting) })
	waitForLogLine(t, mark, "Vault failed to read path "+mount+"/creds/app (HTTP 500: ")
	waitForLogLine(t, mark, "task credentials could not be renewed or revoked this round, and are tried again at the next")
	time.Sleep(2 * lifecycleInterval)
	if out, err := exec.Command("./postgres.sh", "start").CombinedOutput(); err != nil {
		t.Fatalf("postgres.sh start: %v: %s", err, out)
	}
	pgUp := time.Now()
	t.Logf("PostgreSQL down for %s, until renewals had failed", pgUp.Sub(pgDown).Round(100*time.Millisecond))
	waitRunning(t, starting, 1)
	t.Logf("the task that failed while PostgreSQL was down: served %s after it came back (swarm's restart delay included)", time.Since(pgUp).Round(100*time.Millisecond))
	renewedAfter("PostgreSQL's restart", pgUp)

	// The users logged in through the quota, and after PostgreSQL came back:
	// nothing failed but while it was down.
	okBefore, failedBefore := 0, 0
	for _, c := range containers {
		l := parsePgLog(docker(t, "logs", "--since", start.Format(time.RFC3339Nano), "--until", pgDown.Format(time.RFC3339Nano), c))
		okBefore, failedBefore = okBefore+l.ok, failedBefore+l.fail
	}
	if okBefore == 0 || failedBefore > 0 {
		t.Errorf("through the quota and until PostgreSQL went down: %d database logins ok, %d failed", okBefore, failedBefore)
	}
	waitFor(t, "logins to succeed again after PostgreSQL's restart", 15*time.Second, func() (bool, string) {
		ok, _ := loginsSince(pgUp.Add(2 * time.Second))
		return ok >= 2, fmt.Sprint(ok, " ok")
	})
	time.Sleep(ttl / 2)
	if ok, failed := loginsSince(pgUp.Add(3 * time.Second)); failed > 0 {
		t.Errorf("after PostgreSQL came back: %d logins ok, %d failed", ok, failed)
	}

	// The services removed, their records go within an interval or two, as
	// the next tests, which count STATE_PATH, expect.
	docker(t, "service", "rm", service, starting)
	waitFor(t, "the records of the removed services to go", time.Minute, func() (bool, string) {
		n := len(f.stateRecords(t))
		return n == 0, fmt.Sprint(n, " records")
	})
}

// leasesUnder is the lease IDs the plugin's STATE_PATH records name under
// prefix.
func (f *fixture) leasesUnder(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for _, r := range f.stateRecords(t) {
		if l, _ := r["lease_id"].(string); strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// leaseExpiry is when Vault says a lease ends.
func (f *fixture) leaseExpiry(t *testing.T, lease string) time.Time {
	t.Helper()
	s, err := f.root.Logical().Write("sys/leases/lookup", map[string]any{"lease_id": lease})
	if err != nil || s == nil {
		t.Fatalf("looking lease up: %v", err)
	}
	at, _ := s.Data["expire_time"].(string)
	e, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		t.Fatalf("lease expire_time %q: %v", at, err)
	}
	return e
}
