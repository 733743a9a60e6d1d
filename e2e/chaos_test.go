//go:build e2e && cluster

package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/e2e/chaos"
)

// TestChaos is the fault campaign (make chaos SEED=… DURATION=…): on the
// 3-manager bed, a workload of services with KV, token, wrapped and
// database secrets (some with vault.rotate), scaled, rolled and rotated,
// and a crash-looping service, while a seeded schedule injects faults one
// or two at a time (e2e/chaos). A checker of its own, which asks Vault,
// PostgreSQL and each node's engine and reads nothing of the plugin's,
// samples throughout and at the end:
//  1. every running task's files hold what Vault had when the task was
//     created, or a later value after a rotation's rollout: never another
//     task's, never stale beyond ROTATION_INTERVAL and the rollout;
//  2. every running task's database user logs in, outside the faults that
//     cut it off from PostgreSQL;
//  3. after the workload is removed and two lifecycle intervals pass: no
//     task token, lease, database user or STATE_PATH record left;
//  4. no value, token, wrapping token, accessor, role-id or secret-id in
//     any node's log;
//  5. the plugin process on each manager never died but when the schedule
//     killed it (or its engine).
//
// Vault is the bed's persistent one (storage on disk, port 8202), so that
// it can be sealed and restarted under the plugins; the plugins log in
// with AppRole, as production installs do, and so log in again by
// themselves when their token is revoked.
func TestChaos(t *testing.T) {
	length, seed := chaosParams(t)
	kinds, err := chaos.ParseKinds(os.Getenv("CHAOS_FAULTS"))
	if err != nil {
		t.Fatalf("CHAOS_FAULTS: %v", err)
	}
	episodes := chaos.Schedule(seed, length, kinds)
	again := fmt.Sprintf("make chaos SEED=%d DURATION=%s", seed, length)
	if f := os.Getenv("CHAOS_FAULTS"); f != "" {
		again += " CHAOS_FAULTS=" + f
	}
	t.Logf("chaos: SEED=%d DURATION=%s, %d episodes (%s draws this schedule again):\n%s",
		seed, length, len(episodes), again, chaos.Describe(episodes))

	nodes := strings.Fields(bed(t, "nodes"))
	if len(nodes) < 3 {
		t.Fatalf("the cluster bed has %d nodes: run e2e/cluster.sh up (make chaos does)", len(nodes))
	}
	c := newCampaign(t, nodes, seed)
	c.setUp()
	c.deploy()
	c.run(episodes, length)
	c.finish()
}

// chaosParams reads DURATION (default 3m, at most 60m) and SEED (default:
// drawn, and printed).
func chaosParams(t *testing.T) (time.Duration, uint64) {
	length := 3 * time.Minute
	if s := os.Getenv("DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 2*time.Minute || d > time.Hour {
			t.Fatalf("DURATION=%q: give a duration from 2m to 60m", s)
		}
		length = d
	}
	seed := rand.Uint64() % 1_000_000
	if s := os.Getenv("SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: give a number", s)
		}
		seed = n
	}
	return length, seed
}

// Campaign settings: the plugins' lifecycle and rotation intervals, the
// task tokens' TTL, the database lease TTL, and the checker's bounds.
const (
	chaosLifecycle = 5 * time.Second
	chaosRotation  = 5 * time.Second
	chaosTokenTTL  = 90 * time.Second
	chaosDBTTL     = 60 * time.Second
	chaosDBMaxTTL  = 8 * time.Minute
	chaosWrapTTL   = 10 * time.Minute
	// A rolled service holds a new value within ROTATION_INTERVAL and its
	// rollout (one task at a time, each a few seconds).
	chaosStaleBound = 2 * time.Minute
	// A request that fails this long after its episode recovered counts
	// as failed after the heal.
	chaosSettle = 10 * time.Second
	// How long the checker waits for a canary task after an episode.
	chaosRecoveryBound = 3 * time.Minute
)

// window is a time a fault was in force: from its injection to its heal
// (to is zero while it lasts); recovered is when the canary was served
// after the episode's last heal.
type window struct {
	kind      chaos.Kind
	node      int // the manager it was done to (0: not a node's)
	from, to  time.Time
	recovered time.Time
}

type campaign struct {
	t     *testing.T
	all   []int
	f     *fixture
	vault persistentVault
	addr  string
	creds string
	marks map[int]int64
	seed  uint64
	rng   *rand.Rand

	// Names of this campaign's Vault objects and services.
	kvPath, dbMount, approle string
	services                 map[string]string // role (kv, tok, wrap, db, crash, canary) → service name

	mu         sync.Mutex
	windows    []*window
	down       map[int]bool // managers killed or partitioned now
	history    []kvVersion  // every KV value written, in order
	maybe      []string     // KV values whose write failed, maybe carried out
	violations []string
	issued     []string // values the checker saw, for invariant 4
	dbSince    map[string]time.Time
	recovery   map[chaos.Kind][]time.Duration
	blows      map[int][]time.Time // when a node's plugin or engine was killed or started
	injected   map[chaos.Kind]int
	samples    int
	notes      []string
}

type kvVersion struct {
	value   string
	written time.Time
}

// newCampaign: seed also draws the campaign's other choices (which
// follower, the workload's changes), so that one seed plays one campaign
// as far as the swarm's own timing lets it.
func newCampaign(t *testing.T, nodes []string, seed uint64) *campaign {
	c := &campaign{t: t, down: map[int]bool{}, dbSince: map[string]time.Time{}, recovery: map[chaos.Kind][]time.Duration{},
		blows: map[int][]time.Time{}, injected: map[chaos.Kind]int{}, marks: map[int]int64{}, services: map[string]string{},
		seed: seed, rng: rand.New(rand.NewPCG(seed, 1))}
	for _, n := range nodes {
		i, _ := strconv.Atoi(n)
		c.all = append(c.all, i)
	}
	return c
}

// violate records a broken promise.
func (c *campaign) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.violations = append(c.violations, time.Now().UTC().Format("15:04:05")+" "+msg)
	c.mu.Unlock()
	c.t.Log("VIOLATION: " + msg)
}

// note logs what the campaign does, with the time.
func (c *campaign) note(format string, args ...any) {
	c.t.Logf("%s %s", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (c *campaign) see(values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range values {
		if v != "" {
			c.issued = append(c.issued, v)
		}
	}
}

// dockerOn runs the docker CLI against node i's engine, bounded: an engine
// behind a partition may not answer.
func dockerOn(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", fmt.Sprintf("unix:///run/svn%d/docker.sock", i)}, args...)...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return string(out), err
}

// bedTry runs e2e/cluster.sh.
func bedTry(args ...string) (string, error) {
	out, err := exec.Command("./cluster.sh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cluster.sh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// leaderNow is the manager that leads, from the managers that are not cut
// off; 0 when none says it leads.
func (c *campaign) leaderNow() int {
	for _, i := range c.all {
		if c.isDown(i) {
			continue
		}
		out, err := dockerOn(i, "node", "inspect", "self", "--format", "{{.ManagerStatus.Leader}}")
		if err == nil && strings.TrimSpace(out) == "true" {
			return i
		}
	}
	return 0
}

func (c *campaign) isDown(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[i]
}

// via is a manager to ask about the swarm: the leader, or one not cut off.
func (c *campaign) via() int {
	if l := c.leaderNow(); l != 0 {
		return l
	}
	for _, i := range c.all {
		if !c.isDown(i) {
			return i
		}
	}
	return c.all[0]
}

// setUp starts the persistent Vault, writes the campaign's secrets,
// roles and policies, and installs the plugin on every manager with
// AppRole.
func (c *campaign) setUp() {
	t := c.t
	storage, err := filepath.Abs(filepath.Join("..", ".e2e", "chaos-vault-"+run))
	if err != nil {
		t.Fatal(err)
	}
	c.vault = persistentVault{port: persistentVaultPort, storage: storage}
	c.addr = c.vault.must(t, "start")
	t.Cleanup(func() {
		c.vault.sh("stop")
		os.RemoveAll(storage)
	})
	tokenFile, _ := filepath.Abs(filepath.Join("..", ".e2e", "vault-token-"+persistentVaultPort))
	c.f = vaultFixtureAt(t, c.addr, tokenFile)
	f := c.f
	// The checker's calls give up soon: Vault may be stopped.
	f.root.SetClientTimeout(5 * time.Second)
	c.kvPath = run + "/chaos/app"
	c.writeKV()

	// The database engine, its users named for this campaign.
	c.dbMount = f.dbFixture(t, chaosDBTTL, chaosDBMaxTTL)

	// AppRole for the plugins' own login.
	c.approle = run + "-approle"
	c.creds, _ = filepath.Abs(filepath.Join("..", ".e2e", "cluster", "chaos-creds-"+run))
	os.MkdirAll(c.creds, 0o700)
	t.Cleanup(func() { os.RemoveAll(c.creds) })
	f.pluginAppRole(t, c.approle, c.creds)

	tag := run + "-chaos"
	push(t, "TAG="+tag)
	for _, i := range c.all {
		tryOn(i, "plugin", "rm", "-f", clusterAlias)
		on(t, i, "plugin", "install", "--grant-all-permissions", "--alias", clusterAlias, registry+"/swarmvault:"+tag,
			"VAULT_ADDR="+c.addr, "VAULT_AUTH_METHOD=approle", "VAULT_AUTH_MOUNT="+c.approle,
			"VAULT_ROLE_ID_FILE=/run/swarmvault/role-id", "VAULT_SECRET_ID_FILE=/run/swarmvault/secret-id",
			"VAULT_SECRET_ID_WRAPPED=false", "VAULT_SECRET_ID_REMOVE=false", "VAULT_CLIENT_TIMEOUT=5s",
			"TOKEN_ROLE="+f.role, "LOG_LEVEL=debug", "credentials.source="+c.creds,
			fmt.Sprintf("docker-socket.source=/run/svn%d/docker.sock", i), "STATE_PATH="+f.statePath,
			"LIFECYCLE_INTERVAL="+chaosLifecycle.String(), "ROTATION_INTERVAL="+chaosRotation.String())
		st, err := os.Stat(nodeLog(i))
		if err != nil {
			t.Fatal(err)
		}
		c.marks[i] = st.Size()
	}
	t.Cleanup(func() {
		for _, i := range c.all {
			tryOn(i, "plugin", "rm", "-f", clusterAlias)
		}
	})
}

// writeKV writes a new version of the campaign's KV secret, and keeps it
// in the history the checker compares files with.
func (c *campaign) writeKV() error {
	v := "chaos-" + randHex(12)
	c.see(v)
	_, err := c.f.root.KVv2("secret").Put(context.Background(), c.kvPath, map[string]any{"password": v})
	c.mu.Lock()
	if err == nil {
		c.history = append(c.history, kvVersion{value: v, written: time.Now()})
	} else {
		// A write that timed out (Vault stopped) may still be carried
		// out when Vault resumes: a value a task may hold, though not one
		// it must.
		c.maybe = append(c.maybe, v)
	}
	c.mu.Unlock()
	return err
}

// deploy creates the workload: each role's secret, policy and service.
func (c *campaign) deploy() {
	t, f := c.t, c.f
	via := c.via()
	secret := func(name string, labels map[string]string) {
		args := []string{"secret", "create", "--driver", clusterAlias}
		for k, v := range labels {
			args = append(args, "--label", k+"="+v)
		}
		on(t, via, append(args, name)...)
		t.Cleanup(func() {
			for range 30 {
				if _, err := tryOn(c.via(), "secret", "rm", name); err == nil || strings.Contains(err.Error(), "not found") {
					return
				}
				time.Sleep(time.Second)
			}
		})
	}
	kv := map[string]string{"vault.path": "secret/" + c.kvPath, "vault.field": "password"}
	secret(run+"_kv", kv)
	secret(run+"_kvrot", map[string]string{"vault.path": "secret/" + c.kvPath, "vault.field": "password", "vault.rotate": "true"})
	secret(run+"_tok", map[string]string{"vault.type": "token", "vault.token.ttl": chaosTokenTTL.String()})
	secret(run+"_wrap", map[string]string{"vault.path": "secret/" + c.kvPath, "vault.wrap": chaosWrapTTL.String()})
	db := dbSecretLabels(c.dbMount)
	db["vault.rotate"] = "true"
	secret(run+"_db", db)

	type svc struct {
		role, secret string
		replicas     int
		extra        []string
		cmd          []string
	}
	sleep := []string{testImage, "sleep", "86400"}
	for _, s := range []svc{
		{"kv", run + "_kvrot", 3, nil, sleep},
		{"tok", run + "_tok", 3, nil, sleep},
		{"wrap", run + "_wrap", 2, nil, sleep},
		{"db", run + "_db", 2, nil, []string{pgImage, "-every", "1s"}},
		{"crash", run + "_tok", 1, []string{"--secret", "source=" + run + "_db,target=db", "--restart-delay", "2s"},
			[]string{testImage, "sh", "-c", "sleep 5; exit 1"}},
		{"canary", run + "_kv", 0, nil, sleep},
	} {
		name := run + "-" + s.role
		c.services[s.role] = name
		paths := []string{"secret/data/" + c.kvPath}
		if s.role == "db" || s.role == "crash" {
			paths = append(paths, c.dbMount+"/creds/app")
		}
		f.servicePolicy(t, name, paths...)
		target := s.secret
		if s.role == "db" {
			target = "source=" + s.secret + ",target=db"
		}
		args := []string{"service", "create", "--detach", "--name", name, "--network", "host", "--replicas", strconv.Itoa(s.replicas),
			"--secret", target, "--update-order", "start-first"}
		args = append(append(args, s.extra...), s.cmd...)
		on(t, via, args...)
		t.Cleanup(func() { tryOn(c.via(), "service", "rm", name) })
	}
	for _, role := range []string{"kv", "tok", "wrap", "db"} {
		waitTasks(t, via, c.services[role], map[string]int{"kv": 3, "tok": 3, "wrap": 2, "db": 2}[role])
	}
	c.note("workload deployed: %v", c.services)
}

// run plays the schedule, with the workload's changes and the checker
// going on beside it, until length has passed.
func (c *campaign) run(episodes []chaos.Episode, length time.Duration) {
	start := time.Now()
	deadline := start.Add(length)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); c.churn(ctx) }()
	go func() { defer wg.Done(); c.checkLoop(ctx) }()
	go func() { defer wg.Done(); c.watchPlugins(ctx) }()

	for n, e := range episodes {
		if time.Until(start.Add(e[0].At)) > 0 {
			time.Sleep(time.Until(start.Add(e[0].At)))
		}
		if time.Now().After(deadline.Add(-chaos.Tail)) {
			c.note("episode %d and later dropped: the campaign's time is up", n+1)
			break
		}
		c.play(n+1, e)
	}
	<-ctx.Done()
	wg.Wait()
	c.note("campaign over after %s", time.Since(start).Round(time.Second))
}

// play injects an episode's faults and heals them on the schedule's
// times from its first injection, then measures the recovery: the time
// from the last heal to a canary task served, counted for each kind of
// the episode.
func (c *campaign) play(n int, e chaos.Episode) {
	type step struct {
		at   time.Duration
		heal bool
		f    chaos.Fault
	}
	var steps []step
	for _, f := range e {
		steps = append(steps, step{at: f.At - e[0].At, f: f}, step{at: f.At + f.For - e[0].At, heal: true, f: f})
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].at < steps[j].at })
	began := time.Now()
	active := map[chaos.Kind]*window{}
	for _, s := range steps {
		if d := time.Until(began.Add(s.at)); d > 0 {
			time.Sleep(d)
		}
		if s.heal {
			if w := active[s.f.Kind]; w != nil {
				c.heal(w)
			}
			continue
		}
		if w := c.inject(n, s.f); w != nil {
			active[s.f.Kind] = w
		}
	}
	healed := time.Now()
	took, err := c.canary()
	recovered := time.Now()
	c.mu.Lock()
	for _, w := range active {
		w.recovered = recovered
		if err == nil {
			c.recovery[w.kind] = append(c.recovery[w.kind], recovered.Sub(healed))
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.violate("episode %d: no canary task served within %s of the last heal: %v", n, chaosRecoveryBound, err)
		return
	}
	c.note("episode %d recovered: a canary task served %s after the last heal (%s)", n, recovered.Sub(healed).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
}

// inject does one fault; nil when it could not be done (say why).
func (c *campaign) inject(n int, f chaos.Fault) *window {
	w := &window{kind: f.Kind, from: time.Now()}
	target := func() int {
		if f.Leader {
			return c.leaderNow()
		}
		l := c.leaderNow()
		var others []int
		for _, i := range c.all {
			if i != l {
				others = append(others, i)
			}
		}
		return others[c.rng.IntN(len(others))]
	}
	var err error
	switch f.Kind {
	case chaos.EngineKill, chaos.Partition:
		if err = c.waitQuorum(); err != nil {
			break
		}
		w.node = target()
		if w.node == 0 {
			err = fmt.Errorf("no leader")
			break
		}
		w.from = time.Now()
		c.mu.Lock()
		c.down[w.node] = true
		if f.Kind == chaos.EngineKill {
			c.blows[w.node] = append(c.blows[w.node], time.Now())
		}
		c.mu.Unlock()
		cmd := "kill"
		if f.Kind == chaos.Partition {
			cmd = "partition"
		}
		_, err = bedTry(cmd, strconv.Itoa(w.node))
	case chaos.PluginKill:
		w.node = c.leaderNow()
		if w.node == 0 {
			err = fmt.Errorf("no leader")
			break
		}
		// During a scale-up: two more tasks of the KV service asked for,
		// then the leader's plugin killed while they are served.
		svc := c.services["kv"]
		n := len(c.running(w.node, svc))
		dockerOn(w.node, "service", "scale", "--detach", fmt.Sprintf("%s=%d", svc, n+2))
		time.Sleep(300 * time.Millisecond)
		pid := pluginPID(w.node)
		if pid == 0 {
			err = fmt.Errorf("no plugin process on node %d", w.node)
			break
		}
		c.mu.Lock()
		c.blows[w.node] = append(c.blows[w.node], time.Now())
		c.mu.Unlock()
		err = syscall.Kill(pid, syscall.SIGKILL)
	case chaos.VaultStop:
		err = c.signalVault(syscall.SIGSTOP)
	case chaos.VaultRestart:
		_, err = c.vault.sh("restart")
	case chaos.VaultSeal:
		_, err = c.vault.sh("seal")
	case chaos.TokenRevoke:
		var revoked int
		revoked, err = c.f.revokeLogins(c.approle)
		if err == nil && revoked == 0 {
			err = fmt.Errorf("no login token to revoke")
		}
	case chaos.Quota:
		for _, q := range [][2]string{{"token-create", "auth/token/create*"}, {"lease-renew", "sys/leases/renew"}} {
			if _, err = c.f.root.Logical().Write("sys/quotas/rate-limit/swarmvault-chaos-"+q[0], map[string]any{
				"path": q[1], "rate": 1, "interval": "10s",
			}); err != nil {
				c.removeQuotas() // not half a fault
				break
			}
		}
	case chaos.PGRestart:
		err = runIn("./postgres.sh", "halt")
	}
	if err != nil {
		c.note("episode %d: %s not injected: %v", n, f.Kind, err)
		c.mu.Lock()
		delete(c.down, w.node)
		c.mu.Unlock()
		return nil
	}
	if f.For == 0 {
		w.to = time.Now()
	}
	c.mu.Lock()
	c.windows = append(c.windows, w)
	c.injected[f.Kind]++
	c.mu.Unlock()
	where := ""
	if w.node != 0 {
		where = fmt.Sprintf(" on node %d", w.node)
	}
	c.note("episode %d: %s%s", n, f.Kind, where)
	return w
}

// removeQuotas removes the campaign's quotas; an error when one is left.
func (c *campaign) removeQuotas() error {
	var err error
	for _, q := range []string{"token-create", "lease-renew"} {
		if _, e := c.f.root.Logical().Delete("sys/quotas/rate-limit/swarmvault-chaos-" + q); e != nil {
			err = e
		}
	}
	return err
}

// heal ends a fault that lasts, trying for a minute: Vault may be sealed
// or stopped by the other fault of the episode.
func (c *campaign) heal(w *window) {
	var err error
	for start := time.Now(); ; time.Sleep(2 * time.Second) {
		if err = c.healOnce(w); err == nil || time.Since(start) > time.Minute {
			break
		}
	}
	if err != nil {
		c.violate("%s could not be healed: %v", w.kind, err)
	}
	c.mu.Lock()
	w.to = time.Now()
	if w.node != 0 {
		delete(c.down, w.node)
	}
	c.mu.Unlock()
	c.note("healed: %s", w.kind)
}

func (c *campaign) healOnce(w *window) error {
	var err error
	switch w.kind {
	case chaos.EngineKill:
		c.mu.Lock()
		c.blows[w.node] = append(c.blows[w.node], time.Now())
		c.mu.Unlock()
		_, err = bedTry("start", strconv.Itoa(w.node))
	case chaos.Partition:
		_, err = bedTry("heal", strconv.Itoa(w.node))
	case chaos.VaultStop:
		err = c.signalVault(syscall.SIGCONT)
	case chaos.VaultSeal:
		_, err = c.vault.sh("unseal")
	case chaos.Quota:
		err = c.removeQuotas()
	case chaos.PGRestart:
		err = runIn("./postgres.sh", "start")
	}
	return err
}

func runIn(cmd string, args ...string) error {
	out, err := exec.Command(cmd, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", cmd, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *campaign) signalVault(sig syscall.Signal) error {
	b, err := os.ReadFile(filepath.Join("..", ".e2e", "vault-"+persistentVaultPort+".pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

// waitQuorum waits until every manager is reachable, so that taking one
// down leaves a quorum.
func (c *campaign) waitQuorum() error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if l := c.leaderNow(); l != 0 {
			out, err := dockerOn(l, "node", "ls", "--format", "{{.ManagerStatus}}")
			if err == nil && strings.Count(out, "Leader")+strings.Count(out, "Reachable") == len(c.all) {
				return nil
			}
		}
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("the managers are not all reachable")
}

// canary scales the canary service from 0 to 1 and waits for its task to
// run with the KV value: the time from a heal to a served request.
func (c *campaign) canary() (time.Duration, error) {
	svc := c.services["canary"]
	start := time.Now()
	defer func() {
		for range 10 {
			if _, err := dockerOn(c.via(), "service", "scale", "--detach", svc+"=0"); err == nil {
				return
			}
			time.Sleep(2 * time.Second)
		}
	}()
	var last error
	scaled := false
	for time.Since(start) < chaosRecoveryBound {
		via := c.via()
		if !scaled {
			if _, err := dockerOn(via, "service", "scale", "--detach", svc+"=1"); err != nil {
				last = err
				time.Sleep(time.Second)
				continue
			}
			scaled = true
		}
		for _, task := range c.running(via, svc) {
			got, err := dockerOn(task.nodeIndex, "exec", task.container, "cat", "/run/secrets/"+run+"_kv")
			if err == nil && c.inHistory(got) {
				return time.Since(start), nil
			}
			last = fmt.Errorf("canary task on node %d: %v", task.nodeIndex, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return 0, last
}

func (c *campaign) inHistory(v string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.history {
		if h.value == v {
			return true
		}
	}
	return slices.Contains(c.maybe, v)
}

// chaosTask is a task the checker looks at.
type chaosTask struct {
	id, container string
	nodeIndex     int
	created       time.Time
}

// running lists the running tasks (desired and current state running) of
// service, asking node via, without failing the test: a manager may not
// answer during a fault.
func (c *campaign) running(via int, service string) []clusterTask {
	var out []clusterTask
	for _, ct := range c.runningTasks(via, service) {
		out = append(out, clusterTask{id: ct.id, container: ct.container, nodeIndex: ct.nodeIndex})
	}
	return out
}

func (c *campaign) runningTasks(via int, service string) []chaosTask {
	ids, err := dockerOn(via, "service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", service)
	if err != nil || strings.TrimSpace(ids) == "" {
		return nil
	}
	nodesOut, err := dockerOn(via, "node", "ls", "--format", "{{.ID}} {{.Hostname}}")
	if err != nil {
		return nil
	}
	idx := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(nodesOut), "\n") {
		var id, host string
		fmt.Sscan(line, &id, &host)
		idx[id], _ = strconv.Atoi(strings.TrimPrefix(host, "svn"))
	}
	info, err := dockerOn(via, append([]string{"inspect", "--format",
		"{{.ID}} {{.Status.State}} {{.DesiredState}} {{.NodeID}} {{with .Status.ContainerStatus}}{{.ContainerID}}{{else}}-{{end}} {{.CreatedAt.Format \"2006-01-02T15:04:05.999999999Z07:00\"}}"},
		strings.Fields(ids)...)...)
	if err != nil {
		c.note("the checker could not list the tasks of %s on node %d: %v", service, via, err)
		return nil
	}
	var tasks []chaosTask
	for _, line := range strings.Split(strings.TrimSpace(info), "\n") {
		var id, state, desired, node, container, created string
		fmt.Sscan(line, &id, &state, &desired, &node, &container, &created)
		if state != "running" || desired != "running" || container == "" || container == "-" {
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, created)
		tasks = append(tasks, chaosTask{id: id, container: container, nodeIndex: idx[node], created: at})
	}
	return tasks
}

// churn is the workload's own changes, seeded apart from the faults: the
// KV and database services scaled, the token service rolled, the KV
// secret rotated by new versions.
func (c *campaign) churn(ctx context.Context) {
	rng := rand.New(rand.NewPCG(c.seed, 2))
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(15+rng.IntN(20)) * time.Second):
		}
		via := c.via()
		var err error
		what := ""
		switch n := rng.IntN(5); {
		case n == 0 || time.Since(lastWrite) > 2*time.Minute:
			what = "a new KV version"
			if err = c.writeKV(); err == nil {
				lastWrite = time.Now()
			}
		case n == 1:
			r := 2 + rng.IntN(5)
			what = fmt.Sprintf("kv scaled to %d", r)
			_, err = dockerOn(via, "service", "scale", "--detach", fmt.Sprintf("%s=%d", c.services["kv"], r))
		case n == 2:
			r := 1 + rng.IntN(3)
			what = fmt.Sprintf("db scaled to %d", r)
			_, err = dockerOn(via, "service", "scale", "--detach", fmt.Sprintf("%s=%d", c.services["db"], r))
		case n == 3:
			what = "tok rolled"
			_, err = dockerOn(via, "service", "update", "--detach", "--force", c.services["tok"])
		default:
			r := 1 + rng.IntN(3)
			what = fmt.Sprintf("wrap scaled to %d", r)
			_, err = dockerOn(via, "service", "scale", "--detach", fmt.Sprintf("%s=%d", c.services["wrap"], r))
		}
		if err != nil {
			c.note("workload: %s failed (%v); left for later", what, err)
		} else {
			c.note("workload: %s", what)
		}
	}
}

// faultAt tells whether a fault of one of kinds (any, when none given)
// was in force, or not yet recovered from, at some time in [from, to]; a
// node's fault counts only for node (0: any node).
func (c *campaign) faultAt(from, to time.Time, node int, kinds ...chaos.Kind) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.windows {
		if len(kinds) > 0 && !slices.Contains(kinds, w.kind) {
			continue
		}
		if node != 0 && w.node != 0 && w.node != node {
			continue
		}
		end := w.recovered
		if end.IsZero() {
			end = time.Now().Add(time.Hour) // in force, or not yet recovered from
		}
		if !w.from.After(to) && !end.Before(from) {
			return true
		}
	}
	return false
}

// faultTime is how much of [from, to] faults were in force or not yet
// recovered from (overlapping faults counted apart: a bound, not a
// measure).
func (c *campaign) faultTime(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Duration
	for _, w := range c.windows {
		end := w.recovered
		if end.IsZero() {
			end = to
		}
		lo, hi := w.from, end
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		if hi.After(lo) {
			d += hi.Sub(lo)
		}
	}
	return d
}

// checkLoop samples the workload every few seconds until ctx ends.
func (c *campaign) checkLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(8 * time.Second):
		}
		c.sample()
	}
}

// sample checks every running task of the workload once (invariants 1
// and 2); the tasks of a manager that is cut off now are left out.
func (c *campaign) sample() {
	via := c.via()
	c.mu.Lock()
	c.samples++
	history := slices.Clone(c.history)
	c.mu.Unlock()
	for _, role := range []string{"kv", "tok", "wrap", "db"} {
		svc := c.services[role]
		tasks := c.runningTasks(via, svc)
		seen := map[string]string{}
		for _, task := range tasks {
			if c.isDown(task.nodeIndex) {
				continue
			}
			file := "/run/secrets/" + run + "_" + map[string]string{"kv": "kvrot", "tok": "tok", "wrap": "wrap", "db": "db"}[role]
			if role == "db" {
				file = "/run/secrets/db"
			}
			got, err := c.readFile(task, file, role)
			if err != nil {
				if c.stillRunning(via, svc, task) && !c.faultAt(time.Now().Add(-time.Minute), time.Now(), task.nodeIndex) {
					c.violate("%s task %.12s on node %d: its file cannot be read: %v", role, task.id, task.nodeIndex, err)
				}
				continue
			}
			if other, dup := seen[got]; dup && role != "kv" {
				c.violate("%s tasks %.12s and %.12s hold the same value: each task's is its own", role, task.id, other)
			}
			seen[got] = task.id
			switch role {
			case "kv":
				c.checkKV(via, svc, task, got, history)
			case "tok":
				c.checkToken(via, svc, task, got)
			case "wrap":
				c.checkWrapped(via, svc, task, got)
			case "db":
				c.checkDB(via, svc, task, got)
			}
		}
	}
}

// readFile reads a task's secret file on its node: with cat, or, for the
// database client (no cat in its image), from the host under the node's
// data root.
func (c *campaign) readFile(task chaosTask, file, role string) (string, error) {
	if role != "db" {
		return dockerOn(task.nodeIndex, "exec", task.container, "cat", file)
	}
	return secretFileOnHost(fmt.Sprintf("/var/lib/svn%d", task.nodeIndex), task.container)
}

// stillRunning asks again whether a task runs: one that ended between the
// list and the check has lost its credentials as it should.
func (c *campaign) stillRunning(via int, svc string, task chaosTask) bool {
	time.Sleep(time.Second)
	for _, t := range c.runningTasks(via, svc) {
		if t.id == task.id {
			return true
		}
	}
	return false
}

// checkKV: the value is one Vault had, the one current when the task was
// created or a later one; and not stale: a version written longer ago
// than chaosStaleBound, not counting the time faults were in force since,
// has reached the task.
func (c *campaign) checkKV(via int, svc string, task chaosTask, got string, history []kvVersion) {
	at := -1
	for i, h := range history {
		if h.value == got {
			at = i
		}
	}
	if at < 0 {
		c.mu.Lock()
		maybe := slices.Contains(c.maybe, got) || slices.ContainsFunc(c.history, func(h kvVersion) bool { return h.value == got })
		c.mu.Unlock()
		if !maybe {
			c.violate("kv task %.12s on node %d holds a value Vault never had for %s (%d bytes)", task.id, task.nodeIndex, c.kvPath, len(got))
		}
		return
	}
	// Current at creation: the last version written before it (a second's
	// slack for the clocks of one machine).
	current := 0
	for i, h := range history {
		if !h.written.After(task.created.Add(time.Second)) {
			current = i
		}
	}
	if at < current-1 || at < current && history[current].written.Before(task.created.Add(-5*time.Second)) {
		c.violate("kv task %.12s on node %d, created %s, holds version %d of %s: version %d was written before it", task.id, task.nodeIndex,
			task.created.Format("15:04:05"), at+1, c.kvPath, current+1)
	}
	if at+1 < len(history) {
		next := history[at+1].written
		if age := time.Since(next) - c.faultTime(next, time.Now()); age > chaosStaleBound && c.stillRunning(via, svc, task) {
			c.violate("kv task %.12s on node %d holds version %d of %s, %s after version %d was written (vault.rotate): stale",
				task.id, task.nodeIndex, at+1, c.kvPath, time.Since(next).Round(time.Second), at+2)
		}
	}
}

// checkToken: the file is a live token made for this task.
func (c *campaign) checkToken(via int, svc string, task chaosTask, got string) {
	token := strings.TrimSpace(got)
	c.see(token)
	s, err := c.f.root.Auth().Token().Lookup(token)
	if err != nil || s == nil {
		if vaultSaidNo(err) && c.stillRunning(via, svc, task) {
			c.violate("tok task %.12s on node %d runs, but its token is not valid: %v", task.id, task.nodeIndex, err)
		}
		return
	}
	acc, _ := s.Data["accessor"].(string)
	c.see(acc)
	meta, _ := s.Data["meta"].(map[string]any)
	if id, _ := meta["task_id"].(string); id != task.id {
		c.violate("tok task %.12s on node %d holds a token made for task %q", task.id, task.nodeIndex, id)
	}
}

// checkWrapped: the file is a wrapping token of the KV path, while its
// TTL lasts.
func (c *campaign) checkWrapped(via int, svc string, task chaosTask, got string) {
	token := strings.TrimSpace(got)
	c.see(token)
	if time.Since(task.created) > chaosWrapTTL-time.Minute {
		return
	}
	s, err := c.f.root.Logical().Write("sys/wrapping/lookup", map[string]any{"token": token})
	if err != nil || s == nil {
		if vaultSaidNo(err) && c.stillRunning(via, svc, task) {
			c.violate("wrap task %.12s on node %d: its wrapping token is not valid: %v", task.id, task.nodeIndex, err)
		}
		return
	}
	if path, _ := s.Data["creation_path"].(string); path != "secret/data/"+c.kvPath {
		c.violate("wrap task %.12s on node %d: its wrapping token wraps %q, not secret/data/%s", task.id, task.nodeIndex, path, c.kvPath)
	}
}

// checkDB: the task's user logs in, by its own client's log since the
// last sample; a failed login counts unless a fault that cuts the task
// off from PostgreSQL (PostgreSQL's restart, its node's partition or
// death) was in force then.
func (c *campaign) checkDB(via int, svc string, task chaosTask, got string) {
	u, err := url.Parse(strings.TrimSpace(got))
	if err != nil {
		c.violate("db task %.12s: its file is not a URL", task.id)
		return
	}
	pw, _ := u.User.Password()
	c.see(pw)
	c.mu.Lock()
	since, ok := c.dbSince[task.container]
	c.mu.Unlock()
	if !ok {
		since = task.created
	}
	out, err := dockerOn(task.nodeIndex, "logs", "-t", "--since", since.Format(time.RFC3339Nano), task.container)
	if err != nil {
		return
	}
	// The next sample reads from just after this one's last line.
	last := since
	for _, line := range strings.Split(out, "\n") {
		stamp, _, _ := strings.Cut(line, " ")
		if at, err := time.Parse(time.RFC3339Nano, stamp); err == nil && at.After(last) {
			last = at
		}
	}
	c.mu.Lock()
	c.dbSince[task.container] = last.Add(time.Nanosecond)
	c.mu.Unlock()
	for _, line := range strings.Split(out, "\n") {
		stamp, rest, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(rest, "fail ") {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			continue
		}
		if c.faultAt(at.Add(-5*time.Second), at, task.nodeIndex, chaos.PGRestart, chaos.Partition, chaos.EngineKill) {
			continue
		}
		if c.stillRunning(via, svc, task) {
			c.violate("db task %.12s on node %d: a login failed at %s: %s", task.id, task.nodeIndex, at.UTC().Format("15:04:05"), strings.TrimSpace(rest))
		}
		return // one report a sample; a task gone has lost its user as it should
	}
}

// vaultSaidNo tells whether a failed lookup is Vault's answer that the
// token is not valid (HTTP 400 or 403), not a lookup that could not be
// made: Vault stopped (a timeout), sealed or restarting (503, no answer)
// says nothing of the task's token.
func vaultSaidNo(err error) bool {
	var re *api.ResponseError
	return err == nil || errors.As(err, &re) && (re.StatusCode == http.StatusBadRequest || re.StatusCode == http.StatusForbidden)
}

// watchPlugins samples each manager's plugin process every second
// (invariant 5): a new process, or none, needs a blow to that node of the
// schedule's (the plugin or its engine killed, the engine started).
func (c *campaign) watchPlugins(ctx context.Context) {
	last := map[int]int{}
	for _, i := range c.all {
		last[i] = pluginPID(i)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		for _, i := range c.all {
			now := pluginPID(i)
			if now == last[i] {
				continue
			}
			c.mu.Lock()
			explained := false
			for _, at := range c.blows[i] {
				if time.Since(at) < 60*time.Second {
					explained = true
				}
			}
			c.mu.Unlock()
			if !explained {
				c.violate("node %d's plugin process changed (%d, then %d) with no kill of the schedule's", i, last[i], now)
			}
			last[i] = now
		}
	}
}

// finish heals what may be left, checks once more with every manager
// back, removes the workload and checks what is left (invariants 3 and
// 4), then reports.
func (c *campaign) finish() {
	t := c.t
	c.mu.Lock()
	open := []*window{}
	for _, w := range c.windows {
		if w.to.IsZero() {
			open = append(open, w)
		}
	}
	c.mu.Unlock()
	for _, w := range open {
		c.heal(w)
	}
	if err := c.waitQuorum(); err != nil {
		c.violate("after the campaign: %v", err)
	}
	c.sample()

	// The workload removed; once its containers are gone, two lifecycle
	// intervals.
	via := c.via()
	for _, role := range []string{"kv", "tok", "wrap", "db", "crash", "canary"} {
		if _, err := dockerOn(via, "service", "rm", c.services[role]); err != nil {
			t.Errorf("removing %s: %v", c.services[role], err)
		}
	}
	waitFor(t, "the workload's containers to be gone from every node", 3*time.Minute, func() (bool, string) {
		for _, i := range c.all {
			out, _ := dockerOn(i, "ps", "-q", "--filter", "name="+run+"-")
			if strings.TrimSpace(out) != "" {
				return false, fmt.Sprintf("node %d runs %s", i, strings.Join(strings.Fields(out), " "))
			}
		}
		return true, ""
	})
	gone := time.Now()
	time.Sleep(2*chaosLifecycle + time.Second)
	left := c.leftovers()
	c.note("leftovers %s after the last container went: %s", time.Since(gone).Round(100*time.Millisecond), left)
	if !left.none() {
		c.violate("after the workload was removed and two lifecycle intervals: %s", left)
		// For the record: how long until they go, if they do.
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
			if l := c.leftovers(); l.none() {
				c.note("leftovers gone %s after the last container", time.Since(gone).Round(100*time.Millisecond))
				break
			}
		}
	}

	// Invariant 4: no value the checker saw in any node's log.
	c.mu.Lock()
	issued := append(slices.Clone(c.issued), c.f.issued...)
	c.mu.Unlock()
	for _, i := range c.all {
		b, err := os.ReadFile(nodeLog(i))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b[c.marks[i]:])
		for _, v := range issued {
			if len(v) >= 8 && strings.Contains(text, v) {
				c.violate("node %d's log contains a value, token, accessor or secret-id the campaign issued (%d bytes)", i, len(v))
			}
		}
	}
	during, after := c.failedRequests()
	report := c.report(during, after, left)
	t.Log("\n" + report)
	dir := filepath.Join("..", ".e2e", "chaos")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "report-"+run+".md"), []byte(report), 0o644)
	if after > 0 {
		c.violate("%d requests failed after their episode had recovered", after)
	}
	if len(c.violations) > 0 {
		t.Errorf("%d promises broken:\n%s", len(c.violations), strings.Join(c.violations, "\n"))
	}
}

// leftovers is what the campaign's tasks left in Vault and PostgreSQL.
type leftovers struct{ tokens, leases, users, records int }

func (l leftovers) none() bool { return l == leftovers{} }
func (l leftovers) String() string {
	return fmt.Sprintf("%d task tokens, %d leases, %d database users, %d STATE_PATH records", l.tokens, l.leases, l.users, l.records)
}

func (c *campaign) leftovers() leftovers {
	t, root := c.t, c.f.root
	var l leftovers
	if err := c.f.eachToken(func(_ string, s *api.Secret) error {
		if meta, _ := s.Data["meta"].(map[string]any); meta["task_id"] != nil {
			l.tokens++
		}
		return nil
	}); err != nil {
		l.tokens = -1 // cannot tell: not none
	}
	if s, err := root.Logical().List("sys/leases/lookup/" + c.dbMount + "/creds/app/"); err != nil {
		l.leases = -1 // cannot tell: not none
	} else if s != nil {
		keys, _ := s.Data["keys"].([]any)
		l.leases = len(keys)
	}
	l.users = pgRolesLike(t, run+"\\_%")
	// Listed, not read: the plugin may be deleting them.
	rel := strings.TrimPrefix(c.f.statePath, "secret/")
	if s, err := root.Logical().List("secret/metadata/" + rel); err != nil {
		l.records = -1 // cannot tell: not none
	} else if s != nil {
		keys, _ := s.Data["keys"].([]any)
		for _, k := range keys {
			if k != "rotation/" {
				l.records++
			}
		}
	}
	return l
}

// pgRolesLike counts PostgreSQL roles whose names are LIKE pattern.
func pgRolesLike(t *testing.T, pattern string) int {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join("..", ".e2e", "postgres-password"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(pgAddr, ":")
	cmd := exec.Command("psql", "-h", host, "-p", port, "-U", "postgres", "-tAc",
		"select count(*) from pg_roles where rolname like '"+strings.ReplaceAll(pattern, "'", "''")+"'")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(string(pw)))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v: %s", err, out)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// failedRequests counts the secret requests the plugins refused during
// the campaign, from the nodes' logs: during an episode (from its first
// injection to its recovery, and chaosSettle after), and after.
func (c *campaign) failedRequests() (during, after int) {
	for _, i := range c.all {
		b, err := os.ReadFile(nodeLog(i))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b[c.marks[i]:]), "\n") {
			// The campaign's own secrets only: a service another test left
			// behind may fail against the campaign's Vault.
			if !strings.Contains(line, `level=error msg=\"secret `+run+`_`) || !strings.Contains(line, "plugin=") {
				continue
			}
			stamp, _, _ := strings.Cut(strings.TrimPrefix(line, `time="`), `"`)
			at, err := time.Parse(time.RFC3339Nano, stamp)
			if err != nil {
				continue
			}
			// dockerd 20.10 writes whole seconds: the line may be up to
			// a second older than the request.
			if c.faultAt(at.Add(-chaosSettle), at.Add(time.Second), 0) {
				during++
			} else {
				after++
				if after <= 5 {
					c.note("a request failed outside any episode, on node %d: %.300s", i, line)
				}
			}
		}
	}
	return during, after
}

// report is the campaign's table, as bench/RESULTS.md shows it.
func (c *campaign) report(during, after int, left leftovers) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "| fault | injected | recovery median | recovery max |\n|---|---|---|---|\n")
	// Recovery: from the last heal of an episode with the fault to a
	// canary task served (swarm's scheduling and, after a node's fault,
	// its elections included).
	total := 0
	for _, k := range chaos.Kinds {
		n := c.injected[k]
		total += n
		r := slices.Clone(c.recovery[k])
		slices.Sort(r)
		med, mx := "–", "–"
		if len(r) > 0 {
			med, mx = r[len(r)/2].Round(100*time.Millisecond).String(), r[len(r)-1].Round(100*time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", k, n, med, mx)
	}
	fmt.Fprintf(&b, "\nFaults injected: %d. Checker samples: %d. Requests failed during faults: %d; after the heal: %d. "+
		"Invariant violations: %d. Leftovers: %s.\n", total, c.samples, during, after, len(c.violations), left)
	return b.String()
}
