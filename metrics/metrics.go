package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the plugin's collectors, on a registry of its own.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	vault    *prometheus.CounterVec
	logins   *prometheus.CounterVec
	leader   prometheus.Gauge
	rollouts *prometheus.CounterVec
	tracked  prometheus.Gauge
	renewals *prometheus.CounterVec
	revokes  *prometheus.CounterVec
}

// counterVec is a counter for each set of the labels' values.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// gauge is one gauge, with its name and help.
func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// New returns the plugin's metrics, with Go's and the process's own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: counterVec("swarmvault_requests_total",
			"Secret requests from the engine, by vault.type and outcome (ok, label_error, config_error, refetch_refused, denied, vault_unavailable, vault_error, internal).",
			"type", "outcome"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "swarmvault_request_duration_seconds",
			Help:    "Time to answer a secret request, by vault.type.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"type"}),
		vault: counterVec("swarmvault_vault_requests_total",
			"HTTP requests to Vault, by operation and status (the HTTP code, or \"error\" when none came back).",
			"operation", "status"),
		logins: counterVec("swarmvault_logins_total",
			"The plugin's own logins to Vault, by VAULT_AUTH_METHOD and outcome (ok, failed).",
			"method", "outcome"),
		leader: gauge("swarmvault_leader",
			"1 while this plugin's manager leads the swarm (its plugin renews, revokes and rotates), else 0."),
		rollouts: counterVec("swarmvault_rollouts_total",
			"Rolling updates rotation asked for, by outcome (started; unsettled: the last update had not settled; failed: the update call failed), and rollout_failed: a service's rollout failed (paused, rolled back), once per such state.",
			"outcome"),
		tracked: gauge("swarmvault_tracked_credentials",
			"Task credentials (tokens, leases) the leader renews and will revoke, after its last round; 0 on other managers."),
		renewals: counterVec("swarmvault_renewals_total",
			"Renewals of a task's credentials by the leader, by outcome (ok, failed: tried again at the next round).",
			"outcome"),
		revokes: counterVec("swarmvault_revocations_total",
			"Revocations of an ended task's credentials by the leader, by outcome (ok, failed: tried again at the next round).",
			"outcome"),
	}
	m.reg.MustRegister(m.requests, m.duration, m.vault, m.logins, m.leader, m.rollouts, m.tracked, m.renewals, m.revokes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request counts one secret request and its time.
func (m *Metrics) Request(typ, outcome string, took time.Duration) {
	m.requests.WithLabelValues(typ, outcome).Inc()
	m.duration.WithLabelValues(typ).Observe(took.Seconds())
}

// Login counts one login of the plugin's own.
func (m *Metrics) Login(method string, ok bool) {
	m.logins.WithLabelValues(method, okOrFailed(ok)).Inc()
}

// Leading sets whether this manager leads.
func (m *Metrics) Leading(leads bool) {
	v := 0.0
	if leads {
		v = 1
	}
	m.leader.Set(v)
}

// Tracked sets the number of task credentials the leader holds.
func (m *Metrics) Tracked(n int) { m.tracked.Set(float64(n)) }

// Renewal counts one renewal of a task's credentials.
func (m *Metrics) Renewal(ok bool) { m.renewals.WithLabelValues(okOrFailed(ok)).Inc() }

// Revocation counts one revocation of a task's credentials.
func (m *Metrics) Revocation(ok bool) { m.revokes.WithLabelValues(okOrFailed(ok)).Inc() }

func okOrFailed(ok bool) string {
	if ok {
		return "ok"
	}
	return "failed"
}

// Rollout counts one rollout rotation asked for.
func (m *Metrics) Rollout(outcome string) { m.rollouts.WithLabelValues(outcome).Inc() }

// TokenTTL exports the plugin token's remaining life, as left tells it at
// scrape time: seconds, 0 without a token, -1 for a token without TTL.
func (m *Metrics) TokenTTL(left func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "swarmvault_token_ttl_seconds",
		Help: "Seconds left before the plugin's own Vault token ends, as of its last login or renewal; 0 without a token, -1 for a token without TTL.",
	}, left))
}

// Transport counts the Vault requests made through next, by operation and
// status; wrap the Vault client's HTTP transport with it.
func (m *Metrics) Transport(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(r)
		status := "error"
		if err == nil {
			status = strconv.Itoa(resp.StatusCode)
		}
		m.vault.WithLabelValues(Operation(r.Method, r.URL.Path), status).Inc()
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Operation names a Vault request from a short list: the API paths the
// plugin calls by name, and the HTTP verb for secret paths, whose names
// are the operator's and could be many.
func Operation(method, path string) string {
	p := strings.TrimPrefix(path, "/v1/")
	switch {
	case strings.HasPrefix(p, "auth/token/create"):
		return "token_create"
	case p == "auth/token/renew-accessor":
		return "token_renew"
	case p == "auth/token/revoke-accessor":
		return "token_revoke"
	case strings.HasPrefix(p, "auth/token/") && strings.HasSuffix(p, "-self"):
		return "own_token" // renew-self, lookup-self, revoke-self
	case strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login") || strings.Contains(p, "/login/"):
		return "login"
	case p == "sys/leases/renew":
		return "lease_renew"
	case strings.HasPrefix(p, "sys/internal/ui/mounts"):
		return "mount_lookup"
	case p == "sys/capabilities-self":
		return "capabilities"
	case strings.HasPrefix(p, "sys/wrapping/"):
		return "wrapping"
	}
	switch method {
	case http.MethodGet:
		return "read"
	case "LIST":
		return "list"
	case http.MethodDelete:
		return "delete"
	default:
		return "write"
	}
}

// Handler serves /metrics, /healthz and /readyz. ready tells why the plugin
// is not ready, or nil.
func (m *Metrics) Handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Serve serves Handler on addr until ctx ends. With no addr it serves
// nothing and returns at once: the collectors still count, for nobody.
func (m *Metrics) Serve(ctx context.Context, addr string, ready func() error) error {
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR=%s: %w", addr, err)
	}
	srv := &http.Server{Handler: m.Handler(ready), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
