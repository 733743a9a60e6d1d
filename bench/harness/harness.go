// Package harness is what the benchmark commands share: the plugin binary
// run as a process of its own on a socket of its own (so that its RSS and
// CPU time are its own), asked for secrets as the engine asks, and the
// latencies of a run.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
)

// Plugin is the plugin binary running on a socket of its own.
type Plugin struct {
	cmd    *exec.Cmd
	client *http.Client
	// Dir is the process's own directory (its socket, its token file);
	// removed by Stop.
	Dir string
}

// Start runs bin with the environment env and the arguments args (the
// plugin's socket is added: -socket Dir/plugin.sock), its output to out.
// files are written into Dir first, by name, mode 0600 (a token file);
// in env and args, "{dir}" stands for Dir.
func Start(bin string, env, args []string, files map[string]string, out io.Writer) (*Plugin, error) {
	dir, err := os.MkdirTemp("", "swarmvault-bench")
	if err != nil {
		return nil, err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	sub := func(in []string) []string {
		outs := make([]string, len(in))
		for i, s := range in {
			outs[i] = strings.ReplaceAll(s, "{dir}", dir)
		}
		return outs
	}
	sock := filepath.Join(dir, "plugin.sock")
	cmd := exec.Command(bin, append([]string{"-socket", sock}, sub(args)...)...)
	cmd.Env = sub(env)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Plugin{cmd: cmd, Dir: dir, client: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 128,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}}, nil
}

// WaitServing asks for labels until the plugin serves them, for at most
// ten seconds.
func (p *Plugin) WaitServing(req Request) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := p.Get(context.Background(), req)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("the plugin does not serve: %w", err)
		}
	}
}

// Request is what the engine sends for one task's secret.
type Request struct {
	Labels                     map[string]string
	Task, Service, ServiceName string
	Node                       string
}

// Get asks the plugin for a secret as the engine does.
func (p *Plugin) Get(ctx context.Context, r Request) error {
	name := r.ServiceName
	if name == "" {
		name = "bench"
	}
	body, _ := json.Marshal(struct {
		secrets.Request
		NodeID string
	}{secrets.Request{SecretName: "bench", SecretLabels: r.Labels, ServiceID: r.Service, ServiceName: name, TaskID: r.Task, TaskName: name + ".1"}, r.Node})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/SecretProvider.GetSecret", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var got secrets.Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return err
	}
	if got.Err != "" || len(got.Value) == 0 {
		return fmt.Errorf("plugin: %s", got.Err)
	}
	return nil
}

// Pid is the plugin process's.
func (p *Plugin) Pid() int { return p.cmd.Process.Pid }

// RSS is the plugin process's resident set size in bytes; HWM its peak.
func (p *Plugin) RSS() (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			hwm = kb * 1024
		}
	}
	return rss, hwm
}

// CPU is the CPU time the plugin process has used, user and system.
func (p *Plugin) CPU() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after it. utime and stime are fields 14 and 15, in clock ticks
	// (100 a second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// Stop ends the plugin as the engine does, with SIGTERM (which also
// flushes a CPU profile), killing it if it lingers.
func (p *Plugin) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(p.Dir)
}

// Cell collects the latencies of one kind of request.
type Cell struct {
	mu      sync.Mutex
	lat     []time.Duration
	elapsed time.Duration
}

// Pct is the p-th percentile latency.
func (c *Cell) Pct(p int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lat) == 0 {
		return 0
	}
	sort.Slice(c.lat, func(i, j int) bool { return c.lat[i] < c.lat[j] })
	return c.lat[(len(c.lat)-1)*p/100]
}

// Rate is requests a second.
func (c *Cell) Rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return float64(len(c.lat)) / c.elapsed.Seconds()
}

// N is the number of requests.
func (c *Cell) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lat)
}

// Run calls do from conc goroutines until ctx ends or d has passed,
// bounded in count too, and adds their latencies to c.
func Run(ctx context.Context, c *Cell, conc int, d time.Duration, do func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil && n < 1_000_000; n++ {
				t := time.Now()
				err := do(context.Background())
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				c.mu.Lock()
				c.lat = append(c.lat, time.Since(t))
				c.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.mu.Lock()
	c.elapsed += time.Since(start)
	c.mu.Unlock()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// Ms formats d in milliseconds.
func Ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }
