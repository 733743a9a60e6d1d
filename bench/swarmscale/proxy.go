package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// vaultProxy stands between the plugin and Vault on loopback and notes the
// time and kind of each call, so that the harness counts the plugin's
// Vault calls by kind and time window without an audit device (which would
// write two JSON lines a call, hundreds of MB for a takeover of 30,000).
type vaultProxy struct {
	srv   *http.Server
	addr  string
	state string // STATE_PATH's mount, "x-state/"

	mu     sync.Mutex
	events []event
}

type event struct {
	at   time.Time
	kind string
}

// The kinds of call counted.
const (
	kindList     = "list of STATE_PATH"
	kindRead     = "record read"
	kindWrite    = "record write"
	kindDelete   = "record delete"
	kindLookup   = "token lookup"
	kindRenew    = "token renewal"
	kindRevoke   = "token revocation"
	kindLease    = "lease renewal"
	kindCreate   = "task token create"
	kindKV       = "task KV read"
	kindOther    = "other"
	lifecycleSet = "lifecycle" // any of the lifecycle's kinds
)

var lifecycleKinds = []string{kindList, kindRead, kindWrite, kindDelete, kindLookup, kindRenew, kindRevoke, kindLease}

func newVaultProxy(vault, stateMount string) (*vaultProxy, error) {
	target, err := url.Parse(vault)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &vaultProxy{addr: "http://" + l.Addr().String(), state: stateMount}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.note(p.kind(r))
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	return p, nil
}

func (p *vaultProxy) close() { p.srv.Close() }

func (p *vaultProxy) kind(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	list := r.Method == "LIST" || r.URL.Query().Get("list") == "true"
	switch {
	case strings.HasPrefix(path, p.state+"metadata/") && list:
		return kindList
	case strings.HasPrefix(path, p.state+"data/") && r.Method == http.MethodGet:
		return kindRead
	case strings.HasPrefix(path, p.state+"data/"):
		return kindWrite
	case strings.HasPrefix(path, p.state+"metadata/") && r.Method == http.MethodDelete:
		return kindDelete
	case path == "auth/token/lookup-accessor":
		return kindLookup
	case path == "auth/token/renew-accessor":
		return kindRenew
	case path == "auth/token/revoke-accessor":
		return kindRevoke
	case path == "sys/leases/renew":
		return kindLease
	case strings.HasPrefix(path, "auth/token/create"):
		return kindCreate
	case strings.Contains(path, "/data/app/"):
		return kindKV
	}
	return kindOther
}

func (p *vaultProxy) note(kind string) {
	p.mu.Lock()
	p.events = append(p.events, event{time.Now(), kind})
	p.mu.Unlock()
}

// count counts the calls of kind (or lifecycleSet) in [from, to).
func (p *vaultProxy) count(kind string, from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.events {
		if e.at.Before(from) || !e.at.Before(to) {
			continue
		}
		if e.kind == kind || kind == lifecycleSet && isLifecycle(e.kind) {
			n++
		}
	}
	return n
}

// counts are the calls in [from, to), by kind.
func (p *vaultProxy) counts(from, to time.Time) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, e := range p.events {
		if !e.at.Before(from) && e.at.Before(to) {
			out[e.kind]++
		}
	}
	return out
}

// span is the first and last call of kind in [from, to).
func (p *vaultProxy) span(kind string, from, to time.Time) (first, last time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.kind != kind || e.at.Before(from) || !e.at.Before(to) {
			continue
		}
		if !ok {
			first, ok = e.at, true
		}
		last = e.at
	}
	return first, last, ok
}

// burst is the span of the lifecycle calls that begin at or after from and
// follow each other with gaps shorter than gap: a takeover's first round,
// whichever plugin makes it.
func (p *vaultProxy) burst(from time.Time, gap time.Duration) (first, last time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.at.Before(from) || !isLifecycle(e.kind) {
			continue
		}
		if !ok {
			first, last, ok = e.at, e.at, true
			continue
		}
		if e.at.Sub(last) >= gap {
			break
		}
		last = e.at
	}
	return first, last, ok
}

func isLifecycle(kind string) bool {
	for _, k := range lifecycleKinds {
		if k == kind {
			return true
		}
	}
	return false
}
