//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The task lifecycle's pieces shared by the one-node and cluster tests: a
// database engine on the test bed's PostgreSQL (e2e/postgres.sh), the
// database client image (e2e/pgclient), and counts read from Vault and
// PostgreSQL with their superusers.

const pgImage = "swarmvault-test/pgclient:latest"

// tlsImage is e2e/tlsserver: an HTTPS server of a certificate and key read
// from files at start.
const tlsImage = "swarmvault-test/tlsserver:latest"

// pgAddr is where e2e/postgres.sh serves, on every node's loopback.
const pgAddr = "127.0.0.1:5433"

// lifecycleInterval is LIFECYCLE_INTERVAL in the tests: short, so that
// renewals and revocations happen within a test's patience.
const lifecycleInterval = 2 * time.Second

// rotationInterval is ROTATION_INTERVAL in the tests.
const rotationInterval = 3 * time.Second

// rolling is what the plugin logs when it rolls a service (with the field
// component=rotation).
const rolling = "rolling the service (as docker service update --force does)"

// dbFixture mounts a database engine on the test PostgreSQL with a role
// whose credentials live ttl unless renewed, and at most maxTTL, and
// returns the mount. Unmounting at the end revokes whatever is left.
func (f *fixture) dbFixture(t *testing.T, ttl, maxTTL time.Duration) string {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join("..", ".e2e", "postgres-password"))
	if err != nil {
		t.Fatalf("the test PostgreSQL's password (make e2e starts it with e2e/postgres.sh): %v", err)
	}
	mount := run + "-db"
	if err := f.root.Sys().Mount(mount, &api.MountInput{Type: "database"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().Unmount(mount) })
	if _, err := f.root.Logical().Write(mount+"/config/pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": "postgresql://{{username}}:{{password}}@" + pgAddr + "/postgres?sslmode=disable",
		"username":       "postgres",
		"password":       strings.TrimSpace(string(pw)),
		"allowed_roles":  "*",
		// Named for the run, so that what a run leaves can be counted.
		"username_template": run + "_{{random 16}}",
	}); err != nil {
		t.Fatalf("configuring the database engine on %s: %v", pgAddr, err)
	}
	if _, err := f.root.Logical().Write(mount+"/roles/app", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         ttl.String(),
		"max_ttl":             maxTTL.String(),
	}); err != nil {
		t.Fatal(err)
	}
	return mount
}

// dbSecretLabels are the labels of a secret that gives a task a database
// URL with credentials of its own.
func dbSecretLabels(mount string) map[string]string {
	return map[string]string{
		"vault.type":     "read",
		"vault.path":     mount + "/creds/app",
		"vault.format":   "template",
		"vault.template": "postgres://{{.username}}:{{.password}}@" + pgAddr + "/postgres?sslmode=disable",
	}
}

// pgRoles counts the PostgreSQL roles whose names are in users.
func pgRoles(t *testing.T, users ...string) int {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join("..", ".e2e", "postgres-password"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(pgAddr, ":")
	quoted := make([]string, len(users))
	for i, u := range users {
		quoted[i] = "'" + strings.ReplaceAll(u, "'", "''") + "'"
	}
	cmd := exec.Command("psql", "-h", host, "-p", port, "-U", "postgres", "-tAc",
		"select count(*) from pg_roles where rolname in ("+strings.Join(quoted, ",")+")")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v: %s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("psql: %q", out)
	}
	return n
}

// pgLog is what a pgclient task printed: its user, its successful logins,
// and its failed ones.
type pgLog struct {
	user     string
	ok, fail int
	lastFail string
}

func parsePgLog(out string) pgLog {
	var l pgLog
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "ok "):
			l.ok++
			l.user = strings.TrimPrefix(line, "ok ")
		case strings.HasPrefix(line, "fail "):
			l.fail++
			l.lastFail = line
		}
	}
	return l
}

// stateRecords reads this run's STATE_PATH with the root token: what the
// plugin recorded, by key.
func (f *fixture) stateRecords(t *testing.T) map[string]map[string]any {
	t.Helper()
	rel := strings.TrimPrefix(f.statePath, "secret/")
	s, err := f.root.Logical().List("secret/metadata/" + rel)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	if s == nil {
		return out
	}
	keys, _ := s.Data["keys"].([]any)
	for _, k := range keys {
		if k == "rotation/" {
			continue // KV v1 rotation's hashes, not task records
		}
		kv, err := f.root.KVv2("secret").Get(t.Context(), rel+"/"+k.(string))
		if err != nil {
			t.Fatal(err)
		}
		out[k.(string)] = kv.Data
	}
	return out
}

// tokensOf counts the tokens in Vault whose metadata names service: what
// the plugin minted for its tasks and Vault still holds.
func (f *fixture) tokensOf(t *testing.T, service string) int {
	t.Helper()
	s, err := f.root.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	keys, _ := s.Data["keys"].([]any)
	for _, k := range keys {
		l, err := f.root.Auth().Token().LookupAccessor(k.(string))
		if err != nil {
			continue // expired between the list and the look-up
		}
		if meta, _ := l.Data["meta"].(map[string]any); meta["service"] == service {
			n++
		}
	}
	return n
}

// accessorAlive tells whether Vault still has the token behind accessor.
func (f *fixture) accessorAlive(accessor string) bool {
	_, err := f.root.Auth().Token().LookupAccessor(accessor)
	return err == nil
}

// secretFileOnHost reads a container's only secret file from the host (the
// pgclient image has no cat): dataRoot/containers/<id>/mounts/secrets/. It
// fails for a container that is gone: its secret files go with it.
func secretFileOnHost(dataRoot, container string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(dataRoot, "containers", container+"*", "mounts", "secrets", "*"))
	if len(files) != 1 {
		return "", fmt.Errorf("container %.12s has %d secret files under %s", container, len(files), dataRoot)
	}
	b, err := os.ReadFile(files[0])
	return string(b), err
}

// secretFilesOnHost reads all of a container's secret files from the host.
func secretFilesOnHost(t *testing.T, dataRoot, container string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataRoot, "containers", container+"*", "mounts", "secrets", "*"))
	var out []string
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if len(out) == 0 {
		t.Fatalf("container %.12s has no secret files under %s", container, dataRoot)
	}
	return out
}

// leaseCount is the number of leases Vault holds under prefix.
func leaseCount(t *testing.T, f *fixture, prefix string) int {
	t.Helper()
	s, err := f.root.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]any)
	return len(keys)
}

// dbUser reads a task's database URL from its secret file on the host,
// gives its password to the leak check (f.issue), and returns its user.
func (f *fixture) dbUser(t *testing.T, dataRoot, container string) string {
	t.Helper()
	user, err := f.tryDBUser(dataRoot, container)
	if err != nil {
		t.Fatal(err)
	}
	return user
}

// tryDBUser is dbUser for a container that may be going.
func (f *fixture) tryDBUser(dataRoot, container string) (string, error) {
	s, err := secretFileOnHost(dataRoot, container)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("the secret of container %.12s is not a URL", container)
	}
	pw, _ := u.User.Password()
	f.issue(pw)
	return u.User.Username(), nil
}

// testLifecycle is the one-node bed's lifecycle test, run by TestSwarm with
// the plugin set up by it: a database user lives as long as its task,
// renewed past its TTL and dropped when it ends; a churn of task tokens
// leaves none behind.
func testLifecycle(t *testing.T, f *fixture, mark int64) {
	// The plugin as the run set it up (the helper tests change its login),
	// then the lifecycle on.
	configurePlugin(t, f.pluginToken, f.role)
	setPlugin(t, "docker-socket.source=/var/run/docker.sock", "STATE_PATH="+f.statePath, "LIFECYCLE_INTERVAL="+lifecycleInterval.String(),
		"ROTATION_INTERVAL="+rotationInterval.String(), "METRICS_ADDR="+metricsAddr)
	t.Cleanup(func() {
		tryDocker("plugin", "disable", "-f", pluginName)
		tryDocker("plugin", "set", pluginName, "docker-socket.source=/dev/null", "STATE_PATH=", "LIFECYCLE_INTERVAL=30s", "ROTATION_INTERVAL=1m", "METRICS_ADDR=")
		tryDocker("plugin", "enable", pluginName)
	})

	t.Run("metrics: Prometheus scrapes the plugin; its requests, a failed one, Vault calls, the login and leadership show in queries", func(t *testing.T) {
		testMetrics(t, f)
	})
	dataRoot := strings.TrimSpace(docker(t, "info", "-f", "{{.DockerRootDir}}"))

	t.Run("a database user is renewed past its TTL while its task runs, and dropped within an interval of its end", func(t *testing.T) {
		const ttl = 10 * time.Second
		mount := f.dbFixture(t, ttl, time.Hour)
		service := run + "-pg"
		secret := run + "_pg"
		f.putPolicy(t, service, readRules(mount+"/creds/app"))
		createDriverSecret(t, secret, dbSecretLabels(mount))
		docker(t, "service", "create", "--detach", "--name", service, "--network", "host",
			"--secret", "source="+secret+",target=db", pgImage, "-every", "1s")
		t.Cleanup(func() { tryDocker("service", "rm", service) })
		container := waitRunning(t, service, 1)[0]
		f.dbUser(t, dataRoot, container)
		var first pgLog
		waitFor(t, "the task to log in", 30*time.Second, func() (bool, string) {
			first = parsePgLog(docker(t, "logs", container))
			return first.ok > 0, first.lastFail
		})
		records := f.stateRecords(t)
		if len(records) != 1 {
			t.Fatalf("STATE_PATH holds %d records, want the task's one: %v", len(records), records)
		}
		var rec map[string]any
		for _, r := range records {
			rec = r
		}
		accessor, _ := rec["accessor"].(string)
		if lease, _ := rec["lease_id"].(string); !strings.HasPrefix(lease, mount+"/creds/app/") || accessor == "" {
			t.Fatalf("the record names lease %q and accessor %q", rec["lease_id"], accessor)
		}
		for k := range rec {
			if strings.Contains(fmt.Sprint(rec[k]), "hvs.") {
				t.Errorf("the record holds a token in %s", k)
			}
		}

		// Three and a half TTLs: without renewals the password expires
		// (VALID UNTIL) after one, and logins fail.
		time.Sleep(3*ttl + ttl/2)
		l := parsePgLog(docker(t, "logs", container))
		t.Logf("task %s: %d logins over %s, %d failed", l.user, l.ok+l.fail, 3*ttl+ttl/2, l.fail)
		if l.fail > 0 || l.ok < 20 {
			t.Errorf("the task's database logins failed while it ran (%d ok, %d failed; last: %s)", l.ok, l.fail, l.lastFail)
		}
		if pgRoles(t, l.user) != 1 {
			t.Errorf("the task's database user %s is gone while it runs", l.user)
		}

		// The task removed: its user and token go within an interval (and
		// the time the engine takes to report the task gone).
		docker(t, "service", "rm", service)
		removed := time.Now()
		waitFor(t, "the database user and token to be revoked", 15*time.Second, func() (bool, string) {
			n := pgRoles(t, l.user)
			return n == 0 && !f.accessorAlive(accessor), fmt.Sprintf("%d roles", n)
		})
		t.Logf("database user dropped and token revoked %s after docker service rm", time.Since(removed).Round(100*time.Millisecond))
		if n := len(f.stateRecords(t)); n != 0 {
			t.Errorf("%d records left in STATE_PATH", n)
		}
		if !strings.Contains(logSince(t, mark), "its credentials are revoked") {
			t.Errorf("no revocation line in dockerd's log")
		}
	})

	t.Run("a rate limit quota (HTTP 429) on the path tasks read: each refused task says so, one call each, swarm's retries are served, and at once after", func(t *testing.T) {
		testRateLimited(t, f)
	})

	t.Run("faults during renewals: a quota refusing lease renewals, then PostgreSQL restarted; the leases are renewed after each heals and the users log in", func(t *testing.T) {
		testFaultsDuringRenewals(t, f, dataRoot)
	})

	t.Run("two files, one credential: each task's user and password files hold one database user; two replicas, two users, two leases; dropped when the service is removed", func(t *testing.T) {
		mount := f.dbFixture(t, time.Minute, time.Hour)
		service := run + "-pgfiles"
		user, password := run+"_pg_user", run+"_pg_password"
		f.putPolicy(t, service, readRules(mount+"/creds/app"))
		createDriverSecret(t, user, map[string]string{"vault.type": "read", "vault.path": mount + "/creds/app", "vault.field": "username"})
		createDriverSecret(t, password, map[string]string{"vault.type": "read", "vault.path": mount + "/creds/app", "vault.field": "password"})
		// As the official postgres image takes them: POSTGRES_USER_FILE,
		// POSTGRES_PASSWORD_FILE.
		docker(t, "service", "create", "--detach", "--name", service, "--network", "host", "--replicas", "2",
			"--secret", "source="+user+",target=db_user", "--secret", "source="+password+",target=db_password",
			pgImage, "-user-file", "/run/secrets/db_user", "-password-file", "/run/secrets/db_password", "-addr", pgAddr, "-every", "1s")
		t.Cleanup(func() { tryDocker("service", "rm", service) })
		users := map[string]bool{}
		for _, c := range waitRunning(t, service, 2) {
			f.issue(secretFilesOnHost(t, dataRoot, c)...)
			var l pgLog
			waitFor(t, "the task to log in with its two files", 30*time.Second, func() (bool, string) {
				l = parsePgLog(docker(t, "logs", c))
				return l.ok > 0, l.lastFail
			})
			if l.fail > 0 {
				t.Errorf("task %.12s: %d logins failed (last: %s): its user and password are not one user's", c, l.fail, l.lastFail)
			}
			users[l.user] = true
		}
		if len(users) != 2 {
			t.Errorf("two replicas logged in as %v, want a user each", users)
		}
		if n := leaseCount(t, f, mount+"/creds/app/"); n != 2 {
			t.Errorf("Vault holds %d leases of %s for 2 tasks of two files each, want 2", n, mount)
		}
		if n := len(f.stateRecords(t)); n != 2 {
			t.Errorf("STATE_PATH holds %d records for 2 tasks, want one each", n)
		}

		docker(t, "service", "rm", service)
		names := slices.Collect(maps.Keys(users))
		waitFor(t, "both database users to be dropped", 20*time.Second, func() (bool, string) {
			n := pgRoles(t, names...)
			return n == 0, fmt.Sprintf("%d roles", n)
		})
		if n := leaseCount(t, f, mount+"/creds/app/"); n != 0 {
			t.Errorf("%d leases left after the service was removed", n)
		}
	})

	t.Run("certificates: key, certificate and CA from one pki/issue serve TLS; with vault.rotate the service is rolled before each certificate expires, and no sampled moment serves an expired one", func(t *testing.T) {
		testCertificates(t, f, mark)
	})

	t.Run("rotation: each new KV v2 version rolls each service that uses it once, start-first, with 3 tasks running throughout", func(t *testing.T) {
		testRotation(t, f, mark)
	})

	t.Run("rotation of a KV v1 secret: a new value rolls the service once, told by a keyed hash kept under STATE_PATH", func(t *testing.T) {
		kv1Put := func(t *testing.T, pw string) {
			if err := f.root.KVv1(f.kv1).Put(context.Background(), "rotating", map[string]any{"pw": pw}); err != nil {
				t.Fatal(err)
			}
		}
		testRotationHashed(t, f, "kv1", map[string]string{"vault.path": f.kv1 + "/rotating", "vault.field": "pw"}, f.kv1+"/rotating", kv1Put)
	})

	t.Run("rotation of a static value read with vault.type=read: a new value rolls the service once, told by a keyed hash", func(t *testing.T) {
		path := run + "/rotread"
		readPut := func(t *testing.T, pw string) { f.putPassword(t, path, pw) }
		testRotationHashed(t, f, "read", map[string]string{"vault.type": "read", "vault.path": "secret/data/" + path, "vault.format": "template", "vault.template": "{{.data.pw}}"},
			"secret/data/"+path, readPut)
	})

	t.Run("rotation of a value the tasks of a node share (vault.reuse): the rolled tasks hold the new one", func(t *testing.T) {
		testRotationReuse(t, f)
	})

	t.Run("rotation of a pinned version is refused, and the task's failure says why", func(t *testing.T) {
		mark := logMark(t)
		service, secret := run+"-rotpinned", run+"_rotpinned"
		f.putPolicy(t, service, readRules("secret/data/"+run+"/*"))
		createDriverSecret(t, secret, map[string]string{"vault.path": "secret/" + run + "/db", "vault.version": "1", "vault.rotate": "true"})
		createService(t, service, nil, secret)
		// dockerd quotes the plugin's quoted line again: match around the quotes.
		waitFor(t, "the plugin's line for the refused secret", time.Minute, func() (bool, string) {
			for _, line := range strings.Split(logSince(t, mark), "\n") {
				if strings.Contains(line, "secret "+secret+": label vault.rotate=true cannot apply with vault.version=") &&
					strings.Contains(line, "a pinned version never changes; remove one of them") {
					return true, ""
				}
			}
			return false, taskStates(service)
		})
		if ids := runningContainers(t, service); len(ids) != 0 {
			t.Errorf("a task runs with a refused secret")
		}
	})

	t.Run("rotation in a stack: a redeploy of the same compose file after a rotation rolls nothing", func(t *testing.T) {
		testRotationStack(t, f)
	})

	t.Run("rotation of database credentials: rolled before their max TTL, logins never fail; without vault.rotate, a warning in time", func(t *testing.T) {
		testRotationDB(t, f, mark, dataRoot)
	})

	t.Run("token churn: tasks that exit and restart leave no token in Vault", func(t *testing.T) {
		// make bench runs 1,000 over 10 replicas (CHURN_LIFETIMES, CHURN_REPLICAS).
		lifetimes, replicas := envInt(t, "CHURN_LIFETIMES", 30), envInt(t, "CHURN_REPLICAS", 3)
		service := run + "-churn"
		secret := run + "_churn"
		f.putPolicy(t, service, readRules("secret/data/"+run+"/*"))
		createDriverSecret(t, secret, map[string]string{"vault.type": "token", "vault.field": "token"})
		churnMark := logMark(t)
		start := time.Now()
		docker(t, "service", "create", "--detach", "--name", service, "--network", "host", "--replicas", strconv.Itoa(replicas),
			"--restart-condition", "any", "--restart-delay", "0s", "--secret", secret,
			testImage, "sh", "-c", "test -s /run/secrets/"+secret+" && sleep 1")
		t.Cleanup(func() { tryDocker("service", "rm", service) })
		delivered := func() int {
			n := 0
			for _, line := range strings.Split(logSince(t, churnMark), "\n") {
				if strings.Contains(line, "secret delivered") && strings.Contains(line, "secret="+secret+" ") {
					n++
				}
			}
			return n
		}
		waitFor(t, fmt.Sprintf("%d task lifetimes", lifetimes), 5*time.Minute+time.Duration(lifetimes)*time.Second, func() (bool, string) {
			n := delivered()
			return n >= lifetimes, fmt.Sprintf("%d delivered", n)
		})
		docker(t, "service", "rm", service)
		waitGone(t, "label=com.docker.swarm.service.name="+service)
		ended := time.Now()
		n := delivered()
		// Two intervals after the last task's end.
		time.Sleep(2*lifecycleInterval + time.Second)
		left := f.tokensOf(t, service)
		t.Logf("%d task lifetimes in %s; %d of their tokens left in Vault %s after the last ended", n, ended.Sub(start).Round(time.Second), left, time.Since(ended).Round(100*time.Millisecond))
		if left != 0 {
			t.Errorf("%d task tokens of %s left in Vault, want 0", left, service)
		}
		if r := f.stateRecords(t); len(r) != 0 {
			t.Errorf("%d records left in STATE_PATH", len(r))
		}
	})

	t.Run("a crash loop: a service whose container exits at once, with a token and a database secret, never holds more live credentials than its replicas' and those issued within an interval; none once removed", func(t *testing.T) {
		testCrashLoop(t, f)
	})

	// Here, before the plugin is restarted below: the same process has
	// served, failed a request, renewed, revoked and rolled services, so
	// every panel's query has series to return.
	t.Run("dashboard: every query of ops/grafana/swarmvault.json returns data from Prometheus, renewals, revocations and rollouts included", func(t *testing.T) {
		testDashboard(t)
	})

	t.Run("without the Docker socket: one warning at start, and credentials live for their TTL", func(t *testing.T) {
		m := logMark(t)
		setPlugin(t, "docker-socket.source=/dev/null")
		waitFor(t, "the start warning", 30*time.Second, func() (bool, string) {
			return strings.Contains(logSince(t, m), inDockerdLog("task lifecycle off: STATE_PATH is set but the docker-socket mount is not set")), ""
		})
		setPlugin(t, "docker-socket.source=/var/run/docker.sock")
	})

	t.Run("a STATE_PATH the plugin may not use: one line naming what its policy lacks, however many rounds", func(t *testing.T) {
		m := logMark(t)
		bad := "secret/not-granted-" + run
		setPlugin(t, "STATE_PATH="+bad)
		// The message, from its start (msg=" as dockerd quotes it), and no
		// prefix: the component is a field of the line.
		want := `msg=\"` + inDockerdLog("STATE_PATH="+bad+": the plugin's token lacks create on secret/data/not-granted-"+run+"/*")
		waitFor(t, "the line", 30*time.Second, func() (bool, string) {
			return strings.Contains(logSince(t, m), want), ""
		})
		// Three more intervals: the check is asked again, and not logged
		// again; the rounds go on (and say what fails in them).
		time.Sleep(3 * lifecycleInterval)
		if n := strings.Count(logSince(t, m), want); n != 1 {
			t.Errorf("the line %d times, want once:\n%s", n, logSince(t, m))
		}
		setPlugin(t, "STATE_PATH="+f.statePath)
	})
}

// envInt is a count from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%s is not a count", name, v)
	}
	return n
}

// putPassword writes {"pw": pw} as a new version of secret/<path> (KV v2),
// records pw as issued, and removes every version when the test ends.
func (f *fixture) putPassword(t *testing.T, path, pw string) {
	t.Helper()
	f.issue(pw)
	if _, err := f.root.KVv2("secret").Put(context.Background(), path, map[string]any{"pw": pw}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.KVv2("secret").DeleteMetadata(context.Background(), path) })
}

// testRotation writes new versions of a vault.rotate secret and watches the
// swarm roll the service that uses it, and leave alone one that does not
// opt in.
func testRotation(t *testing.T, f *fixture, mark int64) {
	path := run + "/rot"
	put := func(pw string) { f.putPassword(t, path, pw) }
	put("rot-1-" + randHex(6))
	// shared uses the rotating secret too: it rolls with service.
	service, shared, plain := run+"-rot", run+"-rotshared", run+"-norot"
	secret, plainSecret := run+"_rot", run+"_norot"
	for _, s := range []string{service, shared, plain} {
		f.putPolicy(t, s, readRules("secret/data/"+path))
	}
	createDriverSecret(t, secret, map[string]string{"vault.path": "secret/" + path, "vault.field": "pw", "vault.rotate": "true"})
	createDriverSecret(t, plainSecret, map[string]string{"vault.path": "secret/" + path, "vault.field": "pw"})
	createService(t, service, []string{"--replicas", "3", "--update-parallelism", "1", "--update-order", "start-first", "--update-delay", "0s"}, secret)
	createService(t, shared, nil, secret)
	createService(t, plain, nil, plainSecret)
	waitRunning(t, service, 3)
	waitRunning(t, shared, 1)
	waitRunning(t, plain, 1)

	// How many of the service's tasks run, sampled while it rolls.
	fewest := 3
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			out, err := tryDocker("ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service, "--filter", "status=running")
			if n := len(strings.Fields(out)); err == nil && n < fewest {
				fewest = n
			}
		}
	}()
	holdAll := func(want string) {
		t.Helper()
		waitFor(t, "every task to hold the new value", 2*time.Minute, func() (bool, string) {
			ids := runningContainers(t, service)
			if len(ids) != 3 {
				return false, taskStates(service)
			}
			for _, id := range ids {
				if out, err := tryDocker("exec", id, "cat", "/run/secrets/"+secret); err != nil || out != want {
					return false, taskStates(service)
				}
			}
			return true, ""
		})
	}
	force := func(svc string) string {
		return strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", svc))
	}
	for round := 2; round <= 3; round++ {
		pw := fmt.Sprintf("rot-%d-%s", round, randHex(6))
		written := time.Now()
		put(pw)
		holdAll(pw)
		waitFor(t, "the service sharing the secret to hold the new value", time.Minute, func() (bool, string) {
			ids := runningContainers(t, shared)
			if len(ids) != 1 {
				return false, taskStates(shared)
			}
			out, err := tryDocker("exec", ids[0], "cat", "/run/secrets/"+secret)
			return err == nil && out == pw, taskStates(shared)
		})
		t.Logf("version %d: every task of both services holds it %s after the write", round, time.Since(written).Round(100*time.Millisecond))
		// Settled: no further rollout for the same version.
		time.Sleep(2 * rotationInterval)
		for _, s := range []string{service, shared} {
			if got := force(s); got != strconv.Itoa(round-1) {
				t.Errorf("after version %d service %s was forced %s times, want %d", round, s, got, round-1)
			}
		}
	}
	close(stop)
	<-sampled
	if fewest < 3 {
		t.Errorf("at one sampled moment only %d of the 3 tasks ran", fewest)
	}
	if got := force(plain); got != "0" {
		t.Errorf("a service that did not opt in was forced %s times", got)
	}
	n := 0
	for _, line := range strings.Split(logSince(t, mark), "\n") {
		if strings.Contains(line, rolling) && (namesService(line, service) || namesService(line, shared)) {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d rollout lines of %s and %s in dockerd's log, want 4 (2 versions, 2 services)", n, service, shared)
	}
}

// namesService tells whether a plugin's log line, as dockerd logs it, has
// the field service=name (the last of its fields, or followed by another).
func namesService(line, name string) bool {
	return strings.Contains(line, "service="+name+`"`) || strings.Contains(line, "service="+name+` `) || strings.Contains(line, "service="+name+`\"`)
}

// testRotationStack deploys a stack whose secret rotates, rotates it, and
// deploys the same file again: the CLI keeps the service's force counter,
// so nothing rolls.
func testRotationStack(t *testing.T, f *fixture) {
	path := run + "/rotstack"
	pw := "rotstack-1-" + randHex(6)
	f.putPassword(t, path, pw)
	stack := run + "rs"
	service := stack + "_app"
	f.putPolicy(t, service, readRules("secret/data/"+path))
	compose := filepath.Join(t.TempDir(), "stack.yml")
	if err := os.WriteFile(compose, []byte(fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %s
    command: ["sleep", "3600"]
    secrets: [pw]
    networks: [hostnet]
    deploy:
      replicas: 2
      update_config: {parallelism: 1, order: start-first}
networks:
  hostnet: {external: true, name: host}
secrets:
  pw:
    driver: %s
    labels: {vault.path: secret/%s, vault.field: pw, vault.rotate: "true"}
`, testImage, pluginName, path)), 0o600); err != nil {
		t.Fatal(err)
	}
	docker(t, "stack", "deploy", "--compose-file", compose, stack)
	t.Cleanup(func() {
		tryDocker("stack", "rm", stack)
		waitGone(t, "label=com.docker.stack.namespace="+stack)
	})
	waitRunning(t, service, 2)

	pw = "rotstack-2-" + randHex(6)
	f.putPassword(t, path, pw)
	var rolled []string
	waitFor(t, "both tasks to hold the new value", 2*time.Minute, func() (bool, string) {
		rolled = runningContainers(t, service)
		if len(rolled) != 2 {
			return false, taskStates(service)
		}
		for _, id := range rolled {
			if out, err := tryDocker("exec", id, "cat", "/run/secrets/pw"); err != nil || out != pw {
				return false, taskStates(service)
			}
		}
		return true, ""
	})
	force := func() string {
		return strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", service))
	}
	waitFor(t, "the rollout to settle", time.Minute, func() (bool, string) {
		st := strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", service))
		return st == "completed", st
	})
	before := force()
	docker(t, "stack", "deploy", "--compose-file", compose, stack)
	time.Sleep(3 * rotationInterval)
	if got := force(); got != before || before != "1" {
		t.Errorf("force counter %s before the redeploy, %s after: want 1 and 1", before, got)
	}
	slices.Sort(rolled)
	now := runningContainers(t, service)
	slices.Sort(now)
	if !slices.Equal(now, rolled) {
		t.Errorf("the redeploy replaced the tasks: %v, then %v", rolled, now)
	}
}

// testRotationDB runs two services of database clients whose credentials
// reach the role's max TTL: the one whose secret has vault.rotate is rolled
// before they end, start-first, and no login of any of its tasks fails;
// the other is warned of before they end, and its logins then fail (which
// shows that the max TTL bites).
func testRotationDB(t *testing.T, f *fixture, mark int64, dataRoot string) {
	// Renewed at half the TTL, capped at the max: the plugin sees the cap
	// about ttl/2 before the end, which is its time to roll.
	const ttl, maxTTL = 30 * time.Second, 60 * time.Second
	mount := f.dbFixture(t, ttl, maxTTL)
	service, plain := run+"-pgrot", run+"-pgplain"
	secret, plainSecret := run+"_pgrot", run+"_pgplain"
	for _, s := range []string{service, plain} {
		f.putPolicy(t, s, readRules(mount+"/creds/app"))
	}
	labels := dbSecretLabels(mount)
	createDriverSecret(t, plainSecret, labels)
	labels["vault.rotate"] = "true"
	createDriverSecret(t, secret, labels)
	start := time.Now()
	for _, c := range []struct{ service, secret, replicas string }{{service, secret, "2"}, {plain, plainSecret, "1"}} {
		docker(t, "service", "create", "--detach", "--name", c.service, "--network", "host", "--replicas", c.replicas,
			"--update-parallelism", "1", "--update-order", "start-first", "--update-delay", "0s",
			"--secret", "source="+c.secret+",target=db", pgImage, "-every", "1s")
		t.Cleanup(func() { tryDocker("service", "rm", c.service) })
	}
	waitRunning(t, service, 2)
	waitRunning(t, plain, 1)

	// Sampled each second: how many of the rotating service's tasks run,
	// until the plain service's credentials have ended. Each container's
	// password goes to the leak check while its secret file is there.
	fewest := 2
	seen := map[string]bool{}
	issueNew := func(ids []string) {
		for _, id := range ids {
			if seen[id] {
				continue
			}
			// Not seen again if it is gone: tried at the next sample.
			_, err := f.tryDBUser(dataRoot, id)
			seen[id] = err == nil
		}
	}
	waitFor(t, "the plain service's credentials to end (a failed login)", maxTTL+45*time.Second, func() (bool, string) {
		running := runningContainers(t, service)
		issueNew(running)
		issueNew(runningContainers(t, plain))
		if n := len(running); n < fewest {
			fewest = n
		}
		time.Sleep(500 * time.Millisecond)
		for _, c := range allContainers(t, plain) {
			if l := parsePgLog(docker(t, "logs", c)); l.fail > 0 {
				return true, ""
			}
		}
		return false, taskStates(plain)
	})
	ended := time.Since(start)
	// A few seconds more: a rotating task left on old credentials would
	// fail its logins now.
	time.Sleep(5 * time.Second)
	if fewest < 2 {
		t.Errorf("at one sampled moment only %d of the rotating service's 2 tasks ran", fewest)
	}
	issueNew(runningContainers(t, service))
	read := 0
	for _, ok := range seen {
		if ok {
			read++
		}
	}
	if n := read; n < 5 {
		t.Errorf("the passwords of %d containers reached the leak check, want the 4 of the rotating service and the plain one's", n)
	}
	containers := allContainers(t, service)
	users := map[string]bool{}
	for _, c := range containers {
		l := parsePgLog(docker(t, "logs", c))
		users[l.user] = true
		if l.fail > 0 || l.ok == 0 {
			t.Errorf("container %.12s of the rotating service: %d logins ok, %d failed (last: %s)", c, l.ok, l.fail, l.lastFail)
		}
	}
	forced := strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", service))
	log := logSince(t, mark)
	rolls := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `level=error msg=\"`) && strings.Contains(line, "service="+service) {
			t.Errorf("an error about the rotating service: %s", line)
		}
		if strings.Contains(line, rolling) && strings.Contains(line, "component=rotation") && strings.Contains(line, "service="+service) {
			rolls++
			if !strings.Contains(line, "the credentials of secret "+secret+" end at ") {
				t.Errorf("the rollout line does not say why: %s", line)
			}
		}
	}
	t.Logf("the plain service's first failed login %s after the deploy; the rotating service was rolled %s times, %d containers with %d database users, all logins ok",
		ended.Round(time.Second), forced, len(containers), len(users))
	if forced == "0" || forced != strconv.Itoa(rolls) {
		t.Errorf("the rotating service was forced %s times, with %d rollout lines: want one line per rollout, at least one", forced, rolls)
	}
	if len(containers) < 4 || len(users) != len(containers) {
		t.Errorf("%d containers and %d database users: want each of the 2 tasks replaced, each container with a user of its own", len(containers), len(users))
	}
	warned := false
	for _, line := range strings.Split(log, "\n") {
		warned = warned || strings.Contains(line, "level=warning") && strings.Contains(line, "reaches its max TTL") &&
			strings.Contains(line, "docker service update --force "+plain+" gives the service's tasks new credentials")
	}
	if !warned {
		t.Errorf("no warning naming the plain service and the command before its credentials ended")
	}
	if got := strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", plain)); got != "0" {
		t.Errorf("the service without vault.rotate was forced %s times", got)
	}
}

// allContainers returns the containers of a service's tasks, running or
// ended (swarm keeps the last few of each slot).
func allContainers(t *testing.T, service string) []string {
	t.Helper()
	return strings.Fields(docker(t, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+service))
}

// testRotationHashed changes the value of a vault.rotate secret that has no
// versions (KV v1, a vault.type=read of a static value), written with put:
// the leader tells the change by a keyed hash and rolls the service once;
// STATE_PATH holds the hash, never the value.
func testRotationHashed(t *testing.T, f *fixture, kind string, labels map[string]string, readable string, put func(*testing.T, string)) {
	write := func(pw string) {
		t.Helper()
		f.issue(pw)
		put(t, pw)
	}
	pw := "hashrot-1-" + randHex(6)
	write(pw)
	service, secret := run+"-rot"+kind, run+"_rot"+kind
	f.putPolicy(t, service, readRules(readable))
	labels["vault.rotate"] = "true"
	createDriverSecret(t, secret, labels)
	createService(t, service, []string{"--replicas", "2", "--update-parallelism", "1", "--update-order", "start-first", "--update-delay", "0s"}, secret)
	waitRunning(t, service, 2)
	// Two rounds: the first sight of the value is recorded, nothing rolls.
	time.Sleep(2 * rotationInterval)
	force := func() string {
		return strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", service))
	}
	if got := force(); got != "0" {
		t.Fatalf("the service was forced %s times before any change", got)
	}
	pw = "hashrot-2-" + randHex(6)
	written := time.Now()
	write(pw)
	waitFor(t, "both tasks to hold the new value", 2*time.Minute, func() (bool, string) {
		ids := runningContainers(t, service)
		if len(ids) != 2 {
			return false, taskStates(service)
		}
		for _, id := range ids {
			if out, err := tryDocker("exec", id, "cat", "/run/secrets/"+secret); err != nil || out != pw {
				return false, taskStates(service)
			}
		}
		return true, ""
	})
	t.Logf("both tasks hold the new value %s after the write", time.Since(written).Round(100*time.Millisecond))
	time.Sleep(2 * rotationInterval)
	if got := force(); got != "1" {
		t.Errorf("the service was forced %s times for one change, want 1", got)
	}
	rel := strings.TrimPrefix(f.statePath, "secret/") + "/rotation"
	keys, err := f.root.Logical().List("secret/metadata/" + rel)
	if err != nil || keys == nil {
		t.Fatalf("no rotation entries under STATE_PATH: %v", err)
	}
	for _, k := range keys.Data["keys"].([]any) {
		kv, err := f.root.KVv2("secret").Get(context.Background(), rel+"/"+k.(string))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(kv.Data), "hashrot-") {
			t.Errorf("STATE_PATH entry rotation/%s holds a value", k)
		}
	}
}

// testRotationReuse rotates a vault.reuse secret, whose value the dispatcher
// keeps once per node for all the tasks there: a start-first rollout starts
// each new task beside the one it replaces, on this one node, and the new
// task must still get the new value.
func testRotationReuse(t *testing.T, f *fixture) {
	path := run + "/rotreuse"
	pw := "rotreuse-1-" + randHex(6)
	f.putPassword(t, path, pw)
	service, secret := run+"-rotreuse", run+"_rotreuse"
	f.putPolicy(t, service, readRules("secret/data/"+path))
	createDriverSecret(t, secret, map[string]string{"vault.path": "secret/" + path, "vault.field": "pw", "vault.rotate": "true", "vault.reuse": "true"})
	createService(t, service, []string{"--replicas", "2", "--update-parallelism", "1", "--update-order", "start-first", "--update-delay", "0s"}, secret)
	waitRunning(t, service, 2)
	for round := 2; round <= 3; round++ {
		pw = fmt.Sprintf("rotreuse-%d-%s", round, randHex(6))
		written := time.Now()
		f.putPassword(t, path, pw)
		waitFor(t, "both tasks to hold the new value", 2*time.Minute, func() (bool, string) {
			ids := runningContainers(t, service)
			if len(ids) != 2 {
				return false, taskStates(service)
			}
			var got []string
			for _, id := range ids {
				out, _ := tryDocker("exec", id, "cat", "/run/secrets/"+secret)
				got = append(got, strings.SplitN(out, "-", 3)[:2]...)
				if out != pw {
					return false, fmt.Sprintf("%s; values of round %v", taskStates(service), got)
				}
			}
			return true, ""
		})
		t.Logf("version %d of a shared value: both tasks hold it %s after the write", round, time.Since(written).Round(100*time.Millisecond))
		time.Sleep(2 * rotationInterval)
		if got := strings.TrimSpace(docker(t, "service", "inspect", "-f", "{{.Spec.TaskTemplate.ForceUpdate}}", service)); got != strconv.Itoa(round-1) {
			t.Errorf("after version %d the service was forced %s times, want %d", round, got, round-1)
		}
	}
}

// testCertificates issues a task certificates of a 30 s TTL from Vault's
// real PKI engine, as three files of one task (one issue), and samples the
// TLS server's certificate every second for three lifetimes: each sample
// that connects must verify against the delivered CA at that moment (never
// expired), the leader must roll the service before each certificate
// expires (ROTATE_AT of its life), and the ended tasks' tokens go.
func testCertificates(t *testing.T, f *fixture, mark int64) {
	const ttl = 30 * time.Second
	ctx := t.Context()
	mount := run + "-pki"
	if err := f.root.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "1h"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.root.Sys().Unmount(mount) })
	caSecret, err := f.root.Logical().WriteWithContext(ctx, mount+"/root/generate/internal", map[string]any{"common_name": "swarmvault e2e CA", "ttl": "1h"})
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := caSecret.Data["certificate"].(string)
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "1m"}); err != nil {
		t.Fatal(err)
	}
	service := run + "-tls"
	f.putPolicy(t, service, fmt.Sprintf("path %q { capabilities = [\"update\"] }", mount+"/issue/web"))
	issue := func(field string) map[string]string {
		return map[string]string{"vault.type": "write", "vault.path": mount + "/issue/web", "vault.param.common_name": "web.example.com",
			"vault.param.ttl": ttl.String(), "vault.field": field, "vault.rotate": "true"}
	}
	for _, field := range []string{"certificate", "private_key", "issuing_ca"} {
		createDriverSecret(t, run+"_tls_"+field, issue(field))
	}
	addr := fmt.Sprintf("127.0.0.1:%d", 18000+rand.IntN(1000))
	docker(t, "service", "create", "--detach", "--name", service, "--network", "host",
		"--secret", "source="+run+"_tls_certificate,target=tls_cert", "--secret", "source="+run+"_tls_private_key,target=tls_key",
		"--secret", "source="+run+"_tls_issuing_ca,target=tls_ca", tlsImage, "-addr", addr)
	t.Cleanup(func() { tryDocker("service", "rm", service) })
	first := waitRunning(t, service, 1)[0]
	dataRoot := strings.TrimSpace(docker(t, "info", "-f", "{{.DockerRootDir}}"))
	f.issue(secretFilesOnHost(t, dataRoot, first)...)
	// The delivered CA is the engine's: the client trusts only it.
	if !slices.ContainsFunc(secretFilesOnHost(t, dataRoot, first), func(v string) bool { return strings.TrimSpace(v) == strings.TrimSpace(caPEM) }) {
		t.Errorf("no secret file of the task is the PKI mount's CA")
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(caPEM))

	serials := map[string]bool{}
	var served, refused int
	for deadline := time.Now().Add(3 * ttl); time.Now().Before(deadline); time.Sleep(time.Second) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: "web.example.com"})
		if err != nil {
			var invalid x509.CertificateInvalidError
			if errors.As(err, &invalid) {
				t.Errorf("at %s the server's certificate does not verify: %v", time.Now().Format(time.TimeOnly), err)
			}
			refused++ // between a task stopping and its replacement serving
			continue
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		served++
		serials[leaf.SerialNumber.String()] = true
	}
	rollouts := 0
	for _, line := range strings.Split(logSince(t, mark), "\n") {
		if strings.Contains(line, rolling) && namesService(line, service) {
			rollouts++
		}
	}
	t.Logf("%d samples served, %d refused (rollouts), %d certificates seen, %d rollouts", served, refused, len(serials), rollouts)
	if rollouts < 2 || len(serials) < 3 {
		t.Errorf("over three certificate lifetimes: %d rollouts and %d certificates, want at least 2 and 3", rollouts, len(serials))
	}
	if served < int(3*ttl/time.Second)/2 {
		t.Errorf("only %d of %d samples reached a server", served, served+refused)
	}
	// One record per task, for its one certificate (three files).
	docker(t, "service", "rm", service)
	waitFor(t, "the records of the service's tasks to go", 20*time.Second, func() (bool, string) {
		n := 0
		for _, r := range f.stateRecords(t) {
			if r["service"] == service {
				n++
			}
		}
		return n == 0, fmt.Sprintf("%d records", n)
	})
}

// testCrashLoop measures a service whose containers exit as soon as they
// start, forever restarted, each start issuing a task token and a database
// user: sampled every second, the live credentials must never exceed
// replicas × secrets plus those issued within the last LIFECYCLE_INTERVAL,
// and none may be left once the service is removed. It runs
// CRASHLOOP_SECONDS (make bench: 600), and logs the figures bench/RESULTS.md
// quotes: live credentials, issued and revoked, Vault calls per restart.
func testCrashLoop(t *testing.T, f *fixture) {
	seconds, replicas := envInt(t, "CRASHLOOP_SECONDS", 40), 3
	const secrets = 2
	mount := f.dbFixture(t, time.Hour, time.Hour)
	service := run + "-crash"
	f.putPolicy(t, service, readRules(mount+"/creds/app"))
	token, db := run+"_crash_token", run+"_crash_db"
	createDriverSecret(t, token, map[string]string{"vault.type": "token"})
	createDriverSecret(t, db, map[string]string{"vault.type": "read", "vault.path": mount + "/creds/app", "vault.field": "password"})
	audit := f.enableAudit(t)
	mark := logMark(t)
	docker(t, "service", "create", "--detach", "--name", service, "--network", "host", "--replicas", strconv.Itoa(replicas),
		"--restart-condition", "any", "--restart-delay", "0s", "--secret", token, "--secret", db,
		testImage, "sh", "-c", "exit 1")
	t.Cleanup(func() { tryDocker("service", "rm", service) })

	// issued[i] is the number of credentials delivered by sample i.
	var issued []int
	delivered := func() int {
		n := 0
		for _, line := range strings.Split(logSince(t, mark), "\n") {
			if strings.Contains(line, "secret delivered") && strings.Contains(line, "service="+service+" ") {
				n++
			}
		}
		return n
	}
	perInterval := int(lifecycleInterval / time.Second)
	maxLive := 0
	for deadline := time.Now().Add(time.Duration(seconds) * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		// Each delivered secret is one task token (a database user's lease
		// is its token's child, and goes with it).
		live := f.tokensOf(t, service)
		issued = append(issued, delivered())
		recent := issued[len(issued)-1]
		if i := len(issued) - 1 - perInterval; i >= 0 {
			recent -= issued[i]
		}
		bound := replicas*secrets + recent
		maxLive = max(maxLive, live)
		if live > bound {
			t.Errorf("%d live task tokens at %s, above %d (%d replicas × %d secrets, and %d delivered within an interval)", live, time.Now().Format(time.TimeOnly), bound, replicas, secrets, recent)
		}
	}
	total := delivered()
	docker(t, "service", "rm", service)
	waitGone(t, "label=com.docker.swarm.service.name="+service)
	time.Sleep(2*lifecycleInterval + time.Second)
	left := f.tokensOf(t, service) + leaseCount(t, f, mount+"/creds/app/")
	calls := auditRequests(t, audit)
	restarts := total / secrets
	t.Logf("crash loop of %d replicas for %ds: %d secrets delivered (%d starts), at most %d live task tokens, %d tokens and leases left after removal; %d Vault requests by the plugin and tasks' tokens, %.1f per start",
		replicas, seconds, total, restarts, maxLive, left, calls, float64(calls)/float64(max(restarts, 1)))
	if left != 0 {
		t.Errorf("%d credentials of the crash loop left in Vault after the service was removed", left)
	}
	if restarts < replicas {
		t.Errorf("only %d starts in %ds: the loop did not loop", restarts, seconds)
	}
}

// auditRequests counts the requests in an audit log made by anything but
// a root token (the test's own calls): the plugin's and the tasks'.
func auditRequests(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Type string
			Auth struct{ Policies []string }
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "request" && !slices.Contains(e.Auth.Policies, "root") {
			n++
		}
	}
	return n
}
