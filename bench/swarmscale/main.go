// Command swarmscale measures the task lifecycle at the scale of a large
// swarm, on one machine: the real plugin binary leads a simulated swarm (a
// fake Docker API on a Unix socket, fakeDocker) whose tasks hold N
// credentials recorded in STATE_PATH, in the real dev Vault, as another
// leader left them. For each N it measures
//
//   - the takeover: from the new leader's first round to every record read
//     and every due credential renewed (wall time, Vault calls by kind,
//     the least TTL left among the credentials at its end);
//   - steady rounds with nothing due, then with 1% of the tasks ending per
//     minute: the plugin's CPU and wall time per round, Vault and Docker
//     calls per round;
//   - GetSecret latency while the takeover runs, against the same load
//     between rounds;
//   - the plugin's RSS holding N records.
//
// Vault calls are counted by a proxy between the plugin and Vault
// (vaultProxy). make bench-scale runs it; bench/RESULTS.md has its tables.
//
//	go run ./bench/swarmscale -plugin bin/swarmvault -n 1000,10000,30000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/bench/harness"
	"github.com/swarmvault/swarmvault/internal/settings"
)

func main() {
	if err := realMain(); err != nil {
		fmt.Fprintf(os.Stderr, "swarmscale: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	plugin          string
	addr, rootToken string
	perTask         int
	interval        time.Duration
	concurrency     int
	quietRounds     int
	churn           time.Duration
	loadConc        int
	tokenTTL        time.Duration
	seed            uint64
	label           string
	legacyRecords   bool
	takeoverOnly    bool
	profile         string
	history         int
	gap             time.Duration
}

func realMain() error {
	var o options
	flag.StringVar(&o.plugin, "plugin", "bin/swarmvault", "the plugin binary")
	flag.StringVar(&o.addr, "vault-addr", "http://127.0.0.1:8200", "Vault's address (a dev server)")
	rootFile := flag.String("root-token-file", ".e2e/vault-token", "file with a root token of that Vault")
	ns := flag.String("n", "1000,10000,30000", "numbers of credentials to measure")
	flag.IntVar(&o.perTask, "per-task", 3, "credentials per task (secrets of vault.type=token)")
	flag.DurationVar(&o.interval, "interval", 5*time.Second, "LIFECYCLE_INTERVAL")
	flag.IntVar(&o.concurrency, "concurrency", 8, "LIFECYCLE_CONCURRENCY")
	flag.IntVar(&o.quietRounds, "quiet-rounds", 6, "steady rounds measured with nothing due")
	flag.DurationVar(&o.churn, "churn", time.Minute, "how long 1% of the tasks end per minute")
	flag.IntVar(&o.loadConc, "load-concurrency", 1, "GetSecret requests at once during the takeover and between rounds")
	flag.DurationVar(&o.tokenTTL, "token-ttl", 30*time.Minute, "the credentials' TTL as recorded: an eighth of them have 40% to 50% of it left at the takeover (due), the others 70% to 100%")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the swarm's IDs and TTLs")
	flag.StringVar(&o.label, "label", "", "a name for this plugin in the tables (default: the binary's path)")
	flag.BoolVar(&o.legacyRecords, "legacy-records", false, "write the records as plugins before issue 23 did (no token_until): the migration's cost")
	flag.DurationVar(&o.gap, "gap", time.Second, "a pause in the lifecycle's Vault calls this long ends the takeover (longer for a plugin whose round pauses for a long Docker list)")
	flag.IntVar(&o.history, "history", 2, "ended tasks swarm keeps per slot (its task-history-retention-limit, 5 by default)")
	flag.StringVar(&o.profile, "plugin-cpuprofile", "", "write the plugin's CPU profile of each N to this path.N")
	flag.BoolVar(&o.takeoverOnly, "takeover-only", false, "measure the takeover and memory only (a plugin before issue 23 logs no round lines)")
	flag.Parse()
	if o.label == "" {
		o.label = o.plugin
	}
	tok, err := os.ReadFile(*rootFile)
	if err != nil {
		return err
	}
	o.rootToken = strings.TrimSpace(string(tok))
	var results []result
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-n: %q is not a number of credentials", s)
		}
		fmt.Fprintf(os.Stderr, "swarmscale: %d credentials (%s)\n", n, o.label)
		r, err := measure(context.Background(), o, n)
		if err != nil {
			return fmt.Errorf("%d credentials: %w", n, err)
		}
		results = append(results, r)
	}
	report(os.Stdout, o, results)
	return nil
}

// result is one N's measurements.
type result struct {
	n, tasks, due        int
	setUp                time.Duration
	takeover             time.Duration // first to last lifecycle call of the first round
	reading              time.Duration // its first call to its last record read
	pluginSaid           string        // the plugin's own line, if it says one
	takeoverCalls        map[string]int
	leastTTL             time.Duration
	allBytes, listBytes  int
	quiet, churn         steady
	during, between      *harness.Cell
	rss, hwm, heap       int64
	endedTasks, revokedN int
	unknownDocker        []string
}

type steady struct {
	rounds      int
	cpu         time.Duration // per round
	wall        time.Duration // median of the plugin's round lines
	vault       map[string]int
	vaultCalls  float64 // per round
	dockerCalls float64 // per round, the request path's lists excluded
	docker      map[string]int64
}

// credential is one token the harness made, as the old leader would have.
type credential struct {
	task, secret, service, serviceID, accessor string
	expires                                    time.Time
}

func measure(ctx context.Context, o options, n int) (result, error) {
	r := result{n: n}
	rng := rand.New(rand.NewPCG(o.seed, uint64(n)))
	v, err := newVault(ctx, o)
	if err != nil {
		return r, fmt.Errorf("setting up Vault: %w", err)
	}
	defer v.cleanUp()

	// The swarm: tasks of 100 each per service, on 100 nodes (or fewer).
	r.tasks = (n + o.perTask - 1) / o.perTask
	nodes := min(100, max(1, r.tasks/10))
	dir, err := os.MkdirTemp("", "swarmscale")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	docker, err := newFakeDocker(filepath.Join(dir, "docker.sock"), nodes)
	if err != nil {
		return r, err
	}
	defer docker.close()
	secrets := []string{"db", "api", "cert", "queue", "cache"}[:o.perTask]
	type svc struct{ id, name string }
	var services []svc
	var creds []credential
	now := time.Now()
	for i := range r.tasks {
		if i%100 == 0 {
			services = append(services, svc{randomID(rng), fmt.Sprintf("app%03d", len(services))})
		}
		s := services[len(services)-1]
		id := randomID(rng)
		node := docker.nodes[rng.IntN(len(docker.nodes))]
		docker.addTask(id, s.id, s.name, node, i%100+1, secrets)
		for range o.history {
			docker.addHistory(randomID(rng), s.id, s.name, node, i%100+1, secrets)
		}
		for _, sec := range secrets {
			if len(creds) == n {
				break
			}
			// A leader that renews at half the TTL leaves between 50% and
			// 100% of it; an eighth of them, with 40% to 50% left, fell due
			// while the swarm had no leader. None has 50% to 70%, so that
			// none falls due in the steady rounds measured after.
			share := 0.70 + 0.30*rng.Float64()
			if rng.IntN(8) == 0 {
				share = 0.40 + 0.10*rng.Float64()
			}
			left := time.Duration(float64(o.tokenTTL) * share).Round(time.Second)
			creds = append(creds, credential{task: id, secret: sec, service: s.name, serviceID: s.id, expires: now.Add(left)})
		}
	}
	start := time.Now()
	if err := v.populate(ctx, creds, o); err != nil {
		return r, fmt.Errorf("writing %d credentials and their records: %w", n, err)
	}
	r.setUp = time.Since(start)
	// Due at the takeover, by the plugin's rule: at half their TTL, and
	// always two rounds before their end.
	margin := max(o.tokenTTL/2, 2*o.interval)
	for _, c := range creds {
		if time.Until(c.expires) <= margin {
			r.due++
		}
	}
	r.allBytes, r.listBytes = docker.taskBytes()

	proxy, err := newVaultProxy(o.addr, v.state+"/")
	if err != nil {
		return r, err
	}
	defer proxy.close()

	logs := newLogWatch()
	metricsAddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	env := []string{"METRICS_ADDR=" + metricsAddr, "VAULT_ADDR=" + proxy.addr, "VAULT_TOKEN_FILE={dir}/token", "TOKEN_ROLE=" + v.role,
		"POLICY_TEMPLATE=" + v.taskPolicy, "STATE_PATH=" + v.state + "/state",
		"LIFECYCLE_INTERVAL=" + o.interval.String(), "LIFECYCLE_CONCURRENCY=" + strconv.Itoa(o.concurrency),
		"ROTATION_INTERVAL=1h", "LOG_LEVEL=debug", "LOG_FORMAT=json"}
	args := []string{"-docker-socket", docker.path}
	if o.profile != "" {
		args = append(args, "-cpuprofile", fmt.Sprintf("%s.%d", o.profile, n))
	}
	p, err := harness.Start(o.plugin, env, args, map[string]string{"token": v.pluginToken}, logs)
	if err != nil {
		return r, err
	}
	defer p.Stop()
	began := time.Now()

	// GetSecret while the takeover runs: tasks of a service of the swarm,
	// on the leader's node, started now (absent from the engine's lists).
	var seq atomic.Int64
	get := func(ctx context.Context) error {
		return p.Get(ctx, harness.Request{Labels: map[string]string{"vault.path": v.kv + "/app/db", "vault.field": "password"},
			Task: fmt.Sprintf("new%022d", seq.Add(1)), Service: services[0].id, ServiceName: services[0].name, Node: leaderNode})
	}
	r.during, r.between = &harness.Cell{}, &harness.Cell{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan error, 1)
	go func() {
		// The first requests wait for the plugin's login, as the takeover
		// does; they are not counted.
		for loadCtx.Err() == nil && get(loadCtx) != nil {
			time.Sleep(10 * time.Millisecond)
		}
		loadDone <- harness.Run(loadCtx, r.during, o.loadConc, time.Hour, get)
	}()

	// The takeover: the first burst of lifecycle calls, and the round's
	// end, whichever the plugin says first.
	deadline := time.Now().Add(10 * time.Minute)
	var first, last time.Time
	for {
		time.Sleep(200 * time.Millisecond)
		f, l, ok := proxy.burst(began, o.gap)
		if ok && time.Since(l) > o.gap+500*time.Millisecond {
			first, last = f, l
			break
		}
		if time.Now().After(deadline) {
			stopLoad()
			return r, errors.New("no takeover within 10 minutes")
		}
	}
	stopLoad()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) {
		return r, fmt.Errorf("GetSecret during the takeover: %w", err)
	}
	r.takeover = last.Sub(first)
	if _, lastRead, ok := proxy.span(kindRead, first, last.Add(time.Millisecond)); ok {
		r.reading = lastRead.Sub(first)
	}
	r.takeoverCalls = proxy.counts(first, last.Add(time.Millisecond))
	r.pluginSaid = logs.first("task credentials found in STATE_PATH")

	// The least TTL left: the credentials that had the least, and a sample.
	slices.SortFunc(creds, func(a, b credential) int { return a.expires.Compare(b.expires) })
	check := creds[:min(len(creds), 200)]
	for range 200 {
		check = append(check, creds[rng.IntN(len(creds))])
	}
	r.leastTTL = time.Duration(1<<63 - 1)
	for _, c := range check {
		s, err := v.root.Auth().Token().LookupAccessorWithContext(ctx, c.accessor)
		if err != nil {
			return r, fmt.Errorf("looking up a credential after the takeover: %w", err)
		}
		ttl, _ := s.Data["ttl"].(json.Number).Int64()
		r.leastTTL = min(r.leastTTL, time.Duration(ttl)*time.Second)
	}

	r.rss, r.hwm = p.RSS()
	if o.takeoverOnly {
		return r, nil
	}
	// The same GetSecret load with no takeover, as long as it ran during
	// the takeover (at least 5 s), rounds coming and going.
	if err := harness.Run(ctx, r.between, o.loadConc, max(5*time.Second, r.takeover), get); err != nil {
		return r, fmt.Errorf("GetSecret between rounds: %w", err)
	}
	// Steady rounds with nothing due.
	if r.quiet, err = measureRounds(ctx, p, proxy, docker, logs, o, o.quietRounds, func() {}); err != nil {
		return r, err
	}
	// 1% of the tasks end per minute.
	ended := 0
	perSecond := float64(r.tasks) * 0.01 / 60
	churnRounds := max(1, int(o.churn/o.interval))
	var order []string
	for _, c := range creds {
		order = append(order, c.task)
	}
	slices.Sort(order)
	order = slices.Compact(order)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	churnFrom := time.Now()
	if r.churn, err = measureRounds(ctx, p, proxy, docker, logs, o, churnRounds, func() {
		due := 0.0
		for t0 := time.Now(); time.Since(t0) < o.churn; time.Sleep(time.Second) {
			due += perSecond
			for ; due >= 1 && ended < len(order); due-- {
				docker.endTask(order[ended])
				ended++
			}
		}
	}); err != nil {
		return r, err
	}
	r.endedTasks = ended
	// Revocations land in the round after the last end.
	time.Sleep(2 * o.interval)
	r.revokedN = proxy.count(kindRevoke, churnFrom, time.Now())
	r.rss, r.hwm = p.RSS()
	r.heap = heapInUse(metricsAddr)
	docker.unknown.Range(func(k, _ any) bool { r.unknownDocker = append(r.unknownDocker, k.(string)); return true })
	if errs := logs.errors(); len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "swarmscale: the plugin logged %d errors, e.g. %s\n", len(errs), errs[0])
	}
	return r, nil
}

// measureRounds measures rounds while during runs (at least rounds
// intervals of it): the plugin's CPU per round, its own round times, and
// the Vault and Docker calls per round (the request path's excluded).
func measureRounds(ctx context.Context, p *harness.Plugin, proxy *vaultProxy, docker *fakeDocker, logs *logWatch, o options, rounds int, during func()) (steady, error) {
	s := steady{}
	// Start at a round's end, so that the window holds whole rounds.
	if _, err := logs.next("round of", 2*o.interval+time.Minute); err != nil {
		return s, err
	}
	from, cpu0, d0 := time.Now(), p.CPU(), docker.counts()
	mark := logs.mark()
	done := make(chan struct{})
	go func() { during(); close(done) }()
	time.Sleep(time.Duration(rounds) * o.interval)
	<-done
	took := logs.roundTimes(mark)
	cpu, to, d1 := p.CPU(), time.Now(), docker.counts()
	s.rounds = len(took)
	if s.rounds == 0 {
		return s, errors.New("no round in the window")
	}
	s.cpu = (cpu - cpu0) / time.Duration(s.rounds)
	slices.Sort(took)
	s.wall = took[len(took)/2]
	s.vault = proxy.counts(from, to)
	lc := 0
	for _, k := range lifecycleKinds {
		lc += s.vault[k]
	}
	s.vaultCalls = float64(lc) / float64(s.rounds)
	s.docker = map[string]int64{}
	var dc int64
	for k, n := range d1 {
		s.docker[k] = n - d0[k]
		if k != "tasks?service&node" && k != "_ping" {
			dc += n - d0[k]
		}
	}
	// A filtered list is the request path's (the re-fetch guard), and is
	// counted in "tasks" too.
	dc -= s.docker["tasks?service&node"]
	s.dockerCalls = float64(dc) / float64(s.rounds)
	return s, nil
}

// freeAddr is a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// heapInUse is the Go heap the plugin holds (go_memstats_heap_inuse_bytes
// of its /metrics), 0 if it cannot be read.
func heapInUse(addr string) int64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return 0
}

// vaultSide is the Vault set-up of one N: a KV mount with the tasks'
// secret, STATE_PATH's mount, the tasks' policy and token role, and the
// plugin's token.
type vaultSide struct {
	root                *api.Client
	kv, state, role     string
	taskPolicy, plugPol string
	pluginToken         string
	legacy              bool
}

func newVault(ctx context.Context, o options) (*vaultSide, error) {
	root, err := settings.Config{VaultAddr: o.addr, Timeout: time.Minute}.VaultClient(nil)
	if err != nil {
		return nil, err
	}
	root.SetToken(o.rootToken)
	run := fmt.Sprintf("scale-%x", time.Now().UnixNano())
	v := &vaultSide{root: root, kv: run + "-kv", state: run + "-state", role: run + "-tasks", taskPolicy: run + "-app", plugPol: run + "-plugin", legacy: o.legacyRecords}
	for _, m := range []string{v.kv, v.state} {
		if err := root.Sys().MountWithContext(ctx, m, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			return nil, err
		}
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err = root.KVv2(v.kv).Put(ctx, "app/db", map[string]any{"password": "scale-pw"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, err
		}
	}
	if err := root.Sys().PutPolicyWithContext(ctx, v.taskPolicy, fmt.Sprintf("path %q { capabilities = [\"read\"] }", v.kv+"/data/app/*")); err != nil {
		return nil, err
	}
	// The plugin's policy, as docs/vault-setup.md gives it for the
	// lifecycle.
	policy := fmt.Sprintf(`
path "auth/token/create/%[1]s" { capabilities = ["update"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/renew-accessor" { capabilities = ["update"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "%[2]s/data/state/*" { capabilities = ["create", "update", "read"] }
path "%[2]s/metadata/state/*" { capabilities = ["delete", "list"] }
path "%[2]s/metadata/state" { capabilities = ["list"] }
`, v.role, v.state)
	if err := root.Sys().PutPolicyWithContext(ctx, v.plugPol, policy); err != nil {
		return nil, err
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/token/roles/"+v.role, map[string]any{
		"allowed_policies": []string{v.taskPolicy}, "orphan": true, "token_type": "default-service", "renewable": true,
	}); err != nil {
		return nil, err
	}
	s, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{v.plugPol}, TTL: "2h"})
	if err != nil {
		return nil, err
	}
	v.pluginToken = s.Auth.ClientToken
	return v, nil
}

// populate makes each credential's token (through the role, with the
// metadata the plugin gives it) and writes its record, as the old leader
// did, 32 at a time.
func (v *vaultSide) populate(ctx context.Context, creds []credential, o options) error {
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		firstErr atomic.Value
	)
	issued := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(creds) || firstErr.Load() != nil {
					return
				}
				c := &creds[i]
				s, err := v.root.Auth().Token().CreateWithRoleWithContext(ctx, &api.TokenCreateRequest{
					Policies: []string{v.taskPolicy}, TTL: strconv.Itoa(int(time.Until(c.expires).Seconds())) + "s",
					Metadata: map[string]string{"service": c.service, "task_id": c.task, "secret": c.secret},
				}, v.role)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				c.accessor = s.Auth.Accessor
				data := map[string]any{"task_id": c.task, "secret": c.secret, "service_id": c.serviceID, "service": c.service,
					"accessor": c.accessor, "token_ttl": int64(o.tokenTTL / time.Second), "lease_id": "", "lease_ttl": 0,
					"lease_renewable": false, "rotate": false, "issued": issued, "expires": 0}
				if !v.legacy {
					data["token_until"], data["lease_until"] = c.expires.Unix(), 0
				}
				if _, err := v.root.KVv2(v.state).Put(ctx, "state/"+c.task+"."+c.secret, data); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// cleanUp revokes every token made through the role and removes the
// mounts, policies and role.
func (v *vaultSide) cleanUp() {
	v.root.Sys().RevokePrefix("auth/token/create/" + v.role)
	v.root.Sys().Unmount(v.kv)
	v.root.Sys().Unmount(v.state)
	v.root.Sys().DeletePolicy(v.taskPolicy)
	v.root.Sys().DeletePolicy(v.plugPol)
	v.root.Logical().Delete("auth/token/roles/" + v.role)
	v.root.Auth().Token().RevokeOrphan(v.pluginToken)
}

// logWatch keeps the plugin's JSON log lines.
type logWatch struct {
	mu    sync.Mutex
	lines []logLine
	w     *io.PipeWriter
	added chan struct{}
}

type logLine struct {
	Level, Msg string
	at         time.Time
}

func newLogWatch() *logWatch {
	pr, pw := io.Pipe()
	l := &logWatch{w: pw, added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line logLine
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				line = logLine{Level: "raw", Msg: sc.Text()}
			}
			line.at = time.Now()
			l.mu.Lock()
			l.lines = append(l.lines, line)
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *logWatch) Write(b []byte) (int, error) { return l.w.Write(b) }

func (l *logWatch) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// next waits for a line holding s that comes after the call.
func (l *logWatch) next(s string, timeout time.Duration) (logLine, error) {
	from := l.mark()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for _, line := range l.lines[from:] {
			if strings.Contains(line.Msg, s) {
				l.mu.Unlock()
				return line, nil
			}
		}
		from = len(l.lines)
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return logLine{}, fmt.Errorf("the plugin logged no %q within %s", s, timeout)
		}
	}
}

func (l *logWatch) first(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line.Msg, s) {
			return line.Msg
		}
	}
	return ""
}

// roundTimes are the times the plugin's round lines since mark say.
func (l *logWatch) roundTimes(mark int) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, line := range l.lines[mark:] {
		// "round of N task credentials took X: ..."
		_, rest, ok := strings.Cut(line.Msg, " took ")
		if !ok || !strings.HasPrefix(line.Msg, "round of") {
			continue
		}
		d, err := time.ParseDuration(strings.SplitN(rest, ":", 2)[0])
		if err == nil {
			out = append(out, d)
		}
	}
	return out
}

func (l *logWatch) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if line.Level == "error" || line.Level == "fatal" {
			out = append(out, line.Msg)
		}
	}
	return out
}

// table writes a title and a Markdown table's heading.
func table(w io.Writer, title string, cols ...string) {
	fmt.Fprintf(w, "%s\n\n| %s |\n|%s\n", title, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
}

func report(w io.Writer, o options, rs []result) {
	fmt.Fprintf(w, "plugin %s; %d credentials per task (vault.type=token, TTL %s as recorded; an eighth due at the takeover); %d ended tasks kept per slot; LIFECYCLE_INTERVAL=%s, LIFECYCLE_CONCURRENCY=%d; GetSecret load: %d at once\n\n",
		o.label, o.perTask, o.tokenTTL, o.history, o.interval, o.concurrency, o.loadConc)
	table(w, "**Takeover** (a new leader's first round: from its first Vault call of the lifecycle to its last)",
		"credentials", "tasks", "wall time", "Vault calls", "per record", "record reads", "token lookups", "renewals (due)", "record writes", "other", "least TTL left after")
	for _, r := range rs {
		c := r.takeoverCalls
		total := 0
		for _, k := range lifecycleKinds {
			total += c[k]
		}
		other := total - c[kindRead] - c[kindLookup] - c[kindRenew]
		fmt.Fprintf(w, "| %d | %d | %.2f s | %d | %.2f | %d | %d | %d (%d) | %d | %d | %s |\n", r.n, r.tasks, r.takeover.Seconds(), total,
			float64(total)/float64(r.n), c[kindRead], c[kindLookup], c[kindRenew], r.due, c[kindWrite], other-c[kindWrite], r.leastTTL.Round(time.Second))
	}
	for _, r := range rs {
		if r.pluginSaid != "" {
			fmt.Fprintf(w, "\n%d: the plugin's line: %q", r.n, r.pluginSaid)
		}
	}
	fmt.Fprintln(w)
	table(w, "\n**Steady rounds** (per round; Docker calls exclude the request path's)",
		"credentials", "phase", "rounds", "plugin CPU", "round wall (median)", "Vault calls", "Docker calls", "Docker /tasks answer (desired running; all)")
	for _, r := range rs {
		if o.takeoverOnly {
			break
		}
		for _, ph := range []struct {
			name string
			s    steady
		}{{"nothing due", r.quiet}, {"1% of tasks ending a minute", r.churn}} {
			fmt.Fprintf(w, "| %d | %s | %d | %.1f ms | %s | %.1f | %.1f | %.1f MB; %.1f MB |\n", r.n, ph.name, ph.s.rounds, float64(ph.s.cpu)/1e6,
				ph.s.wall, ph.s.vaultCalls, ph.s.dockerCalls, float64(r.listBytes)/1e6, float64(r.allBytes)/1e6)
		}
	}
	table(w, "\n**GetSecret** (a new task's KV secret: a task token and a read) **and memory**",
		"credentials", "p50 during the takeover", "p50 between rounds", "ratio", "p99 during", "p99 between", "requests (during, between)", "RSS", "peak RSS", "Go heap in use")
	for _, r := range rs {
		ratio := 0.0
		if r.between.Pct(50) > 0 {
			ratio = float64(r.during.Pct(50)) / float64(r.between.Pct(50))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.2f | %s | %s | %d, %d | %.1f MB | %.1f MB | %.1f MB |\n", r.n, harness.Ms(r.during.Pct(50)), harness.Ms(r.between.Pct(50)), ratio,
			harness.Ms(r.during.Pct(99)), harness.Ms(r.between.Pct(99)), r.during.N(), r.between.N(), float64(r.rss)/1e6, float64(r.hwm)/1e6, float64(r.heap)/1e6)
	}
	fmt.Fprintln(w)
	for _, r := range rs {
		fmt.Fprintf(w, "%d: set-up %s; the takeover's record reads ended %.2f s after its first call; churn: %d tasks ended, %d token revocations (%d credentials each); steady Vault calls by kind, nothing due: %v; churn: %v; Docker: %v",
			r.n, r.setUp.Round(time.Second), r.reading.Seconds(), r.endedTasks, r.revokedN, o.perTask, r.quiet.vault, r.churn.vault, r.quiet.docker)
		if len(r.unknownDocker) > 0 {
			fmt.Fprintf(w, "; Docker endpoints not served: %v", r.unknownDocker)
		}
		fmt.Fprintln(w)
	}
}
