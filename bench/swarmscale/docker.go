package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	swarmtypes "github.com/docker/docker/api/types/swarm"
)

// fakeDocker is the Docker API of a swarm's leader, on a Unix socket: what
// the plugin asks of it (/info, /nodes, /tasks, and empty lists of
// services, secrets and plugins), for a swarm of tasks the harness makes
// and ends. Each task's JSON is made once, as a real engine writes it
// (a service with three secrets, labels, environment and an overlay
// network; 1.6 KB), so that the plugin decodes what a real /tasks gives.
type fakeDocker struct {
	srv  *http.Server
	path string

	mu    sync.Mutex
	tasks map[string]*fakeTask
	order []string // task IDs, in creation order
	nodes []string
	// calls counts the requests by endpoint ("tasks", "tasks/{id}", ...).
	calls sync.Map // string → *atomic.Int64
	// unknown are the endpoints it does not serve, once each, for the
	// harness's report.
	unknown sync.Map
}

type fakeTask struct {
	task swarmtypes.Task
	json []byte
}

const leaderNode = "leadernode00000000000000a"

func newFakeDocker(path string, nodes int) (*fakeDocker, error) {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	d := &fakeDocker{path: path, tasks: map[string]*fakeTask{}}
	d.nodes = append(d.nodes, leaderNode)
	for i := 1; i < nodes; i++ {
		d.nodes = append(d.nodes, fmt.Sprintf("node%021d", i))
	}
	d.srv = &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	go d.srv.Serve(l)
	return d, nil
}

func (d *fakeDocker) close() { d.srv.Close(); os.Remove(d.path) }

// counts are all counts, by endpoint.
func (d *fakeDocker) counts() map[string]int64 {
	out := map[string]int64{}
	d.calls.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Int64).Load(); return true })
	return out
}

func (d *fakeDocker) counted(endpoint string) {
	c, _ := d.calls.LoadOrStore(endpoint, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

// randomID is a swarm object ID: 25 lower-case letters and digits.
func randomID(rng *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 25)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// addTask adds a running task of service on node, with the secrets named.
func (d *fakeDocker) addTask(id, serviceID, service, node string, slot int, secrets []string) {
	now := time.Now().UTC()
	t := swarmtypes.Task{
		ID: id, ServiceID: serviceID, NodeID: node, Slot: slot, DesiredState: swarmtypes.TaskStateRunning,
		Annotations: swarmtypes.Annotations{Labels: map[string]string{}},
		Spec: swarmtypes.TaskSpec{ContainerSpec: &swarmtypes.ContainerSpec{
			Image:  "registry.example.com/team/" + service + ":1.4.2@sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
			Labels: map[string]string{"com.docker.stack.namespace": "prod", "team": "payments"},
			Args:   []string{"serve", "--config", "/run/secrets/config"},
			Env:    []string{"APP_ENV=production", "LOG_LEVEL=info", "DB_PASSWORD_FILE=/run/secrets/db", "PORT=8080"},
		}},
		Status: swarmtypes.TaskStatus{Timestamp: now, State: swarmtypes.TaskStateRunning, Message: "started",
			ContainerStatus: &swarmtypes.ContainerStatus{ContainerID: strings.Repeat(id[:16], 4), PID: 4242}},
		NetworksAttachments: []swarmtypes.NetworkAttachment{{
			Network: swarmtypes.Network{ID: "netprod0000000000000000a1", Spec: swarmtypes.NetworkSpec{
				Annotations:         swarmtypes.Annotations{Name: "prod_backend", Labels: map[string]string{"com.docker.stack.namespace": "prod"}},
				DriverConfiguration: &swarmtypes.Driver{Name: "overlay"}, Scope: "swarm"}},
			Addresses: []string{"10.0.1.17/24"},
		}},
	}
	t.CreatedAt, t.UpdatedAt = now, now
	for _, s := range secrets {
		t.Spec.ContainerSpec.Secrets = append(t.Spec.ContainerSpec.Secrets, &swarmtypes.SecretReference{
			File:     &swarmtypes.SecretReferenceFileTarget{Name: s, UID: "0", GID: "0", Mode: 0o444},
			SecretID: "sec" + s + strings.Repeat("0", 22-len(s)), SecretName: "prod_" + s,
		})
	}
	b, _ := json.Marshal(t)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tasks[id] = &fakeTask{task: t, json: b}
	d.order = append(d.order, id)
}

// addHistory adds an ended task of a slot, as swarm keeps them (its
// task-history-retention-limit is 5 by default).
func (d *fakeDocker) addHistory(id, serviceID, service, node string, slot int, secrets []string) {
	d.addTask(id, serviceID, service, node, slot, secrets)
	d.endTask(id)
}

// endTask marks a task complete, as its node reports an exit.
func (d *fakeDocker) endTask(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ft := d.tasks[id]
	if ft == nil {
		return
	}
	ft.task.Status.State, ft.task.DesiredState = swarmtypes.TaskStateComplete, swarmtypes.TaskStateShutdown
	ft.task.Status.Message = "finished"
	ft.json, _ = json.Marshal(ft.task)
}

func (d *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if strings.HasPrefix(path, "/v1.") {
		if i := strings.IndexByte(path[1:], '/'); i >= 0 {
			path = path[i+1:]
		}
	}
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case path == "/_ping":
		d.counted("_ping")
		w.Write([]byte("OK"))
	case path == "/info":
		d.counted("info")
		fmt.Fprintf(w, `{"ID":"engine","ServerVersion":"28.0.0","Swarm":{"NodeID":%q,"LocalNodeState":"active","ControlAvailable":true}}`, leaderNode)
	case path == "/nodes/"+leaderNode:
		d.counted("nodes/{id}")
		fmt.Fprintf(w, `{"ID":%q,"Status":{"State":"ready"},"ManagerStatus":{"Leader":true,"Reachability":"reachable"}}`, leaderNode)
	case path == "/nodes":
		d.counted("nodes")
		w.Write([]byte("["))
		for i, n := range d.nodes {
			if i > 0 {
				w.Write([]byte(","))
			}
			fmt.Fprintf(w, `{"ID":%q,"Status":{"State":"ready"}}`, n)
		}
		w.Write([]byte("]"))
	case path == "/tasks":
		d.counted("tasks")
		d.serveTasks(w, r.URL.Query())
	case strings.HasPrefix(path, "/tasks/"):
		d.counted("tasks/{id}")
		d.mu.Lock()
		ft := d.tasks[strings.TrimPrefix(path, "/tasks/")]
		var b []byte
		if ft != nil {
			b = ft.json
		}
		d.mu.Unlock()
		if b == nil {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"task %s not found"}`, strings.TrimPrefix(path, "/tasks/"))
			return
		}
		w.Write(b)
	case path == "/services" || path == "/secrets" || path == "/configs" || path == "/plugins":
		d.counted(strings.TrimPrefix(path, "/"))
		w.Write([]byte("[]"))
	default:
		d.unknown.Store(r.Method+" "+path, true)
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"not served by the harness"}`))
	}
}

// serveTasks writes the tasks the filters (service, node) select, all
// without filters.
func (d *fakeDocker) serveTasks(w http.ResponseWriter, q url.Values) {
	var f map[string]map[string]bool
	if raw := q.Get("filters"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &f); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	match := func(key, v string) bool { return len(f[key]) == 0 || f[key][v] }
	matchID := func(id string) bool {
		if len(f["id"]) == 0 {
			return true
		}
		for prefix := range f["id"] {
			if strings.HasPrefix(id, prefix) {
				return true
			}
		}
		return false
	}
	// The answer is gathered under the lock and written after it, so that
	// a long write does not hold up the other requests.
	var parts [][]byte
	d.mu.Lock()
	for _, id := range d.order {
		ft := d.tasks[id]
		if match("service", ft.task.ServiceID) && match("node", ft.task.NodeID) && match("desired-state", string(ft.task.DesiredState)) && matchID(ft.task.ID) {
			parts = append(parts, ft.json)
		}
	}
	d.mu.Unlock()
	switch {
	case len(f["service"]) > 0:
		d.counted("tasks?service&node")
	case len(f["id"]) > 0:
		d.counted("tasks?id")
	case len(f["desired-state"]) > 0:
		d.counted("tasks?desired-state")
	}
	w.Write([]byte("["))
	for i, b := range parts {
		if i > 0 {
			w.Write([]byte(","))
		}
		w.Write(b)
	}
	w.Write([]byte("]"))
}

// taskBytes is the size of the unfiltered /tasks answer, and of the one
// of the tasks desired running.
func (d *fakeDocker) taskBytes() (all, running int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	all, running = 2, 2
	for _, ft := range d.tasks {
		all += len(ft.json) + 1
		if ft.task.DesiredState == swarmtypes.TaskStateRunning {
			running += len(ft.json) + 1
		}
	}
	return all, running
}
