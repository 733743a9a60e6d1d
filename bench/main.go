// Command bench measures what swarmvault adds to a secret fetch: for each
// mode it serves requests through the real plugin binary (its socket handler,
// a process of its own) and makes the same Vault calls directly with the
// Vault API client (the floor), the two sides interleaved in one run so that
// the noise of a shared machine falls on both. It also reports the plugin
// process's RSS, idle and after the highest concurrency.
//
//	go run ./bench -plugin bin/swarmvault -vault-addr http://127.0.0.1:8200 -root-token-file .e2e/vault-token
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/swarmvault/swarmvault/bench/harness"
	"github.com/swarmvault/swarmvault/internal/settings"
)

func main() {
	if err := realMain(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// mode is one way a secret is served, with the Vault calls the plugin makes
// for it; floor makes the same calls directly.
type mode struct {
	name   string
	labels map[string]string
	floor  func(ctx context.Context, v *vaultSide, task int) error
}

func realMain() error {
	plugin := flag.String("plugin", "bin/swarmvault", "the plugin binary")
	addr := flag.String("vault-addr", "http://127.0.0.1:8200", "Vault's address (a dev server)")
	rootFile := flag.String("root-token-file", ".e2e/vault-token", "file with a root token of that Vault")
	dur := flag.Duration("duration", 3*time.Second, "how long each side runs in each cell")
	concs := flag.String("concurrency", "1,16,64", "concurrencies")
	rounds := flag.Int("rounds", 3, "rounds; each runs every cell, plugin and floor alternating")
	only := flag.String("modes", "reuse,task,token,wrap", "modes to run")
	profile := flag.String("plugin-cpuprofile", "", "write the plugin process's CPU profile here")
	dockerSocket := flag.String("docker-socket", "", "a swarm node's Docker socket for the plugin's re-fetch guard, as on a leader (default: none, the plugin against Vault alone)")
	calls := flag.Int("calls-tasks", 20, "tasks whose Vault calls are counted with an audit device, for 1 and 5 KV secrets each (0: not counted)")
	flag.Parse()

	rootTok, err := os.ReadFile(*rootFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	v, err := setUpVault(ctx, *addr, strings.TrimSpace(string(rootTok)))
	if err != nil {
		return fmt.Errorf("setting up Vault: %w", err)
	}
	defer v.cleanUp()

	var g guard
	if *dockerSocket != "" {
		var done func()
		if g, done, err = newGuard(*dockerSocket); err != nil {
			return err
		}
		defer done()
	}
	p, err := startPlugin(*plugin, *addr, v, *profile, *dockerSocket, g)
	if err != nil {
		return err
	}
	defer p.Stop()
	idleRSS, _ := p.RSS()

	modes := []mode{
		{name: "reuse", labels: map[string]string{"vault.path": v.kv + "/app/db", "vault.field": "password", "vault.reuse": "true"},
			floor: func(ctx context.Context, v *vaultSide, _ int) error { return v.read(ctx, v.reader) }},
		{name: "task", labels: map[string]string{"vault.path": v.kv + "/app/db", "vault.field": "password"},
			floor: func(ctx context.Context, v *vaultSide, task int) error {
				c, err := v.mint(ctx, "batch", task)
				if err != nil {
					return err
				}
				return v.read(ctx, c)
			}},
		{name: "token", labels: map[string]string{"vault.type": "token"},
			floor: func(ctx context.Context, v *vaultSide, task int) error {
				_, err := v.mint(ctx, "service", task)
				return err
			}},
		// Wrapped at the source: the KV read itself answered wrapped.
		{name: "wrap", labels: map[string]string{"vault.path": v.kv + "/app/db", "vault.wrap": "true"},
			floor: func(ctx context.Context, v *vaultSide, task int) error {
				c, err := v.mint(ctx, "batch", task)
				if err != nil {
					return err
				}
				w, _ := c.CloneWithHeaders()
				w.SetToken(c.Token())
				w.SetWrappingLookupFunc(func(string, string) string { return "5m" })
				s, err := w.Logical().ReadWithContext(ctx, v.kv+"/data/app/db")
				if err == nil && (s == nil || s.WrapInfo == nil) {
					err = errors.New("no wrapping token")
				}
				return err
			}},
	}
	var levels []int
	for _, s := range strings.Split(*concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-concurrency: %w", err)
		}
		levels = append(levels, n)
	}

	results := map[string]*harness.Cell{} // key mode/conc/side
	var taskSeq atomic.Int64
	for r := 0; r < *rounds; r++ {
		for _, m := range modes {
			if !strings.Contains(","+*only+",", ","+m.name+",") {
				continue
			}
			for _, c := range levels {
				sides := []string{"plugin", "floor"}
				if r%2 == 1 {
					sides = []string{"floor", "plugin"}
				}
				for _, side := range sides {
					key := fmt.Sprintf("%s/%d/%s", m.name, c, side)
					if results[key] == nil {
						results[key] = &harness.Cell{}
					}
					var do func(ctx context.Context) error
					if side == "plugin" {
						do = func(ctx context.Context) error { return p.Get(ctx, g.request(m.labels, int(taskSeq.Add(1)))) }
					} else {
						do = func(ctx context.Context) error { return m.floor(ctx, v, int(taskSeq.Add(1))) }
					}
					if err := harness.Run(ctx, results[key], c, *dur, do); err != nil {
						return fmt.Errorf("%s: %w", key, err)
					}
				}
			}
		}
	}
	busyRSS, _ := p.RSS()

	// Vault calls per task start, counted by Vault itself.
	var perTask []string
	if *calls > 0 {
		for _, k := range []int{1, 5} {
			n, err := callsPerTask(ctx, v, p, g, k, *calls, &taskSeq)
			if err != nil {
				return fmt.Errorf("calls per task start, %d secrets: %w", k, err)
			}
			perTask = append(perTask, fmt.Sprintf("%d secrets: %.2f", k, n))
		}
	}

	// The protocol's own cost: a request the plugin refuses before any Vault
	// call (an unknown format), i.e. the engine's HTTP+JSON hop over the Unix
	// socket to another process, parsing and logging. No floor has it.
	hop := &harness.Cell{}
	bad := map[string]string{"vault.path": v.kv + "/app/db", "vault.format": "bad"}
	if err := harness.Run(ctx, hop, 1, *dur, func(ctx context.Context) error {
		if err := p.Get(ctx, g.request(bad, 0)); err == nil || !strings.Contains(err.Error(), "is not a format") {
			return fmt.Errorf("hop: %v", err)
		}
		return nil
	}); err != nil {
		return err
	}

	fmt.Printf("| mode | concurrency | plugin p50 | floor p50 | p50 ratio | plugin p99 | floor p99 | plugin req/s | floor req/s | req/s ratio |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range modes {
		for _, c := range levels {
			pl, fl := results[fmt.Sprintf("%s/%d/plugin", m.name, c)], results[fmt.Sprintf("%s/%d/floor", m.name, c)]
			if pl == nil || fl == nil {
				continue
			}
			fmt.Printf("| %s | %d | %s | %s | %.2f | %s | %s | %.0f | %.0f | %.2f |\n", m.name, c,
				harness.Ms(pl.Pct(50)), harness.Ms(fl.Pct(50)), float64(pl.Pct(50))/float64(fl.Pct(50)),
				harness.Ms(pl.Pct(99)), harness.Ms(fl.Pct(99)), pl.Rate(), fl.Rate(), pl.Rate()/fl.Rate())
		}
	}
	var total int
	for _, c := range results {
		total += c.N()
	}
	fmt.Printf("\nrequests through the plugin and the floor: %d\n", total)
	fmt.Printf("protocol hop alone (a request refused before any Vault call), concurrency 1: p50 %s, p99 %s\n", harness.Ms(hop.Pct(50)), harness.Ms(hop.Pct(99)))
	if len(perTask) > 0 {
		fmt.Printf("Vault calls per task start (KV secrets, audit device, %d tasks): %s\n", *calls, strings.Join(perTask, ", "))
	}
	fmt.Printf("plugin RSS: %.1f MB idle, %.1f MB after the runs at concurrency %d\n", float64(idleRSS)/1e6, float64(busyRSS)/1e6, levels[len(levels)-1])
	return nil
}

// taskSecrets are five KV secrets of one path, as distinct secrets of a
// task: the first k are asked for.
var taskSecrets = []map[string]string{
	{"vault.field": "password"},
	{"vault.field": "password", "vault.format": "json"},
	{"vault.format": "env"},
	{"vault.format": "json"},
	{},
}

// callsPerTask counts the Vault requests the plugin makes for tasks tasks
// each asking for k KV secrets one after the other, as the engine asks, with
// a file audit device: Vault's own count. The first task warms the mount
// cache and is not counted.
func callsPerTask(ctx context.Context, v *vaultSide, p *harness.Plugin, g guard, k, tasks int, seq *atomic.Int64) (float64, error) {
	ask := func() error {
		task := int(seq.Add(1))
		for _, extra := range taskSecrets[:k] {
			labels := map[string]string{"vault.path": v.kv + "/app/db"}
			for key, val := range extra {
				labels[key] = val
			}
			if err := p.Get(ctx, g.request(labels, task)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := ask(); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "swarmvault-bench-audit")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "audit.log")
	device := fmt.Sprintf("%s-audit-%d", v.kv, k)
	if err := v.root.Sys().EnableAuditWithOptionsWithContext(ctx, device, &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": file}}); err != nil {
		return 0, err
	}
	for range tasks {
		if err := ask(); err != nil {
			v.root.Sys().DisableAuditWithContext(ctx, device)
			return 0, err
		}
	}
	if err := v.root.Sys().DisableAuditWithContext(ctx, device); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Type string
			Auth struct{ Policies []string }
		}
		// The root token's own calls (the audit device's) are not the
		// plugin's.
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == "request" && !slices.Contains(e.Auth.Policies, "root") {
			n++
		}
	}
	return float64(n) / float64(tasks), nil
}

// vaultSide is the Vault set-up both sides use: a KV v1 mount with a
// secret, a task policy and a token role, and a plugin token that may only
// use the role.
type vaultSide struct {
	root, plugin, reader *api.Client
	kv, role, policy     string
	pluginToken          string
}

func setUpVault(ctx context.Context, addr, rootToken string) (*vaultSide, error) {
	// The plugin's own client, so that the floor is a tuned client too.
	root, err := settings.Config{VaultAddr: addr, Timeout: time.Minute}.VaultClient(nil)
	if err != nil {
		return nil, err
	}
	root.SetToken(rootToken)
	run := fmt.Sprintf("bench-%x", time.Now().UnixNano())
	v := &vaultSide{root: root, kv: run + "-kv", role: run + "-tasks", policy: run + "-app"}
	if err := root.Sys().MountWithContext(ctx, v.kv, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err = root.KVv2(v.kv).Put(ctx, "app/db", map[string]any{"password": "bench-pw"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, err
		}
	}
	if err := root.Sys().PutPolicyWithContext(ctx, v.policy, fmt.Sprintf("path %q { capabilities = [\"read\"] }", v.kv+"/data/app/*")); err != nil {
		return nil, err
	}
	if err := root.Sys().PutPolicyWithContext(ctx, run+"-plugin", fmt.Sprintf("path \"auth/token/create/%s\" { capabilities = [\"update\"] }", v.role)); err != nil {
		return nil, err
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/token/roles/"+v.role, map[string]any{
		"allowed_policies": []string{v.policy}, "orphan": true, "token_type": "default-service",
	}); err != nil {
		return nil, err
	}
	s, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{run + "-plugin"}, TTL: "1h"})
	if err != nil {
		return nil, err
	}
	v.pluginToken = s.Auth.ClientToken
	v.plugin, _ = root.CloneWithHeaders()
	v.plugin.SetToken(v.pluginToken)
	// The floor of "reuse": one read with a token that may read.
	r, err := v.mintTTL(ctx, "service", 0, "1h")
	if err != nil {
		return nil, err
	}
	v.reader = r
	return v, nil
}

// mint makes a token for a task through the role, as the plugin does, and
// returns a client acting as it.
func (v *vaultSide) mint(ctx context.Context, typ string, task int) (*api.Client, error) {
	return v.mintTTL(ctx, typ, task, "20s")
}

func (v *vaultSide) mintTTL(ctx context.Context, typ string, task int, ttl string) (*api.Client, error) {
	s, err := v.plugin.Auth().Token().CreateWithRoleWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{v.policy}, TTL: ttl, Type: typ,
		Metadata: map[string]string{"service": "bench", "task_id": strconv.Itoa(task)},
	}, v.role)
	if err != nil {
		return nil, err
	}
	c, _ := v.plugin.CloneWithHeaders()
	c.SetToken(s.Auth.ClientToken)
	return c, nil
}

func (v *vaultSide) read(ctx context.Context, c *api.Client) error {
	s, err := c.KVv2(v.kv).Get(ctx, "app/db")
	if err != nil {
		return err
	}
	if s.Data["password"] != "bench-pw" {
		return errors.New("unexpected value")
	}
	return nil
}

func (v *vaultSide) cleanUp() {
	v.root.Sys().Unmount(v.kv)
	v.root.Auth().Token().RevokeOrphan(v.pluginToken)
}

// startPlugin starts the plugin binary with the harness's Vault side, on
// a socket of its own. dockerSocket "" gives it a Docker socket that does
// not exist: the harness then measures the plugin against Vault alone,
// and the host's Docker engine is none of its business (asked about the
// harness's made-up task IDs, it once answered for real tasks whose IDs
// began with them). With a socket, the plugin's re-fetch guard asks that
// engine about every task start, as on a leader.
func startPlugin(bin, addr string, v *vaultSide, profile, dockerSocket string, g guard) (*harness.Plugin, error) {
	if dockerSocket == "" {
		dockerSocket = "{dir}/no-docker.sock"
	}
	args := []string{"-docker-socket", dockerSocket}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	env := []string{"VAULT_ADDR=" + addr, "VAULT_TOKEN_FILE={dir}/token", "TOKEN_ROLE=" + v.role,
		"POLICY_TEMPLATE=" + v.policy, "LOG_LEVEL=warn"}
	p, err := harness.Start(bin, env, args, map[string]string{"token": v.pluginToken}, os.Stderr)
	if err != nil {
		return nil, err
	}
	if err := p.WaitServing(g.request(map[string]string{"vault.path": v.kv + "/app/db", "vault.field": "password"}, 0)); err != nil {
		return nil, err
	}
	time.Sleep(time.Second) // settle before the idle RSS
	return p, nil
}

// guard is the service and node the harness's requests name: with a
// Docker socket, a real service (of no replicas) on this engine's node,
// so that the re-fetch guard's questions get real answers; the task IDs
// are made up, with a dash that no swarm ID has, so none is a prefix of a
// real task's.
type guard struct{ service, node string }

func (g guard) request(labels map[string]string, task int) harness.Request {
	return harness.Request{Labels: labels, Task: "bench-" + strconv.Itoa(task), Service: g.service, Node: g.node}
}

// newGuard creates the service the requests name, on the engine at
// socket; done removes it.
func newGuard(socket string) (g guard, done func(), err error) {
	docker := func(args ...string) (string, error) {
		out, err := exec.Command("docker", append([]string{"-H", "unix://" + socket}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if g.node, err = docker("info", "--format", "{{.Swarm.NodeID}}"); err != nil || g.node == "" {
		return g, nil, fmt.Errorf("the engine at %s is not a swarm node: %s %v", socket, g.node, err)
	}
	name := fmt.Sprintf("bench-guard-%x", time.Now().UnixNano())
	if g.service, err = docker("service", "create", "-d", "-q", "--name", name, "--replicas", "0", "--no-resolve-image", "swarmvault-test/busybox:latest", "true"); err != nil {
		return g, nil, fmt.Errorf("cannot create service %s: %s %v", name, g.service, err)
	}
	return g, func() { docker("service", "rm", name) }, nil
}
