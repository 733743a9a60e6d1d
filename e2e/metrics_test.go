//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsAddr is the plugin's METRICS_ADDR in the tests, which
// e2e/prometheus.sh scrapes every second.
const metricsAddr = "127.0.0.1:9650"

// prometheusAddr is where e2e/prometheus.sh serves its API.
var prometheusAddr = envOr("PROMETHEUS_ADDR", "127.0.0.1:9091")

// httpGet fetches a loopback URL: its status and body.
func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// promQuery asks Prometheus for the value of an instant query that gives
// one number (NaN-free); ok is false when it gives none.
func promQuery(t *testing.T, q string) (v float64, ok bool) {
	t.Helper()
	code, body := httpGet(t, "http://"+prometheusAddr+"/api/v1/query?query="+url.QueryEscape(q))
	if code != http.StatusOK {
		return 0, false
	}
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// testMetrics deploys a service whose secret is served and one whose label
// is wrong, and reads what Prometheus scraped from the plugin.
func testMetrics(t *testing.T, f *fixture) {
	waitFor(t, "the plugin's /readyz", 30*time.Second, func() (bool, string) {
		code, body := httpGet(t, "http://"+metricsAddr+"/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	if code, body := httpGet(t, "http://"+metricsAddr+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	before := func(q string) float64 { v, _ := promQuery(t, q); return v }
	okBefore := before(`sum(swarmvault_requests_total{type="kv",outcome="ok"})`)
	badBefore := before(`sum(swarmvault_requests_total{outcome="label_error"})`)

	good, bad := run+"-metrics", run+"-metricsbad"
	goodSecret, badSecret := run+"_metrics", run+"_metricsbad"
	f.putPolicy(t, good, readRules("secret/data/"+run+"/*"))
	f.putPolicy(t, bad, readRules("secret/data/"+run+"/*"))
	createDriverSecret(t, goodSecret, map[string]string{"vault.path": "secret/" + run + "/db", "vault.field": "password"})
	createDriverSecret(t, badSecret, map[string]string{"vault.path": "secret/" + run + "/db", "vault.feild": "password"})
	createService(t, good, []string{"--replicas", "2"}, goodSecret)
	createService(t, bad, nil, badSecret)
	waitRunning(t, good, 2)

	for _, c := range []struct {
		what, query string
		atLeast     float64
	}{
		{"the two tasks served", `sum(swarmvault_requests_total{type="kv",outcome="ok"})`, okBefore + 2},
		{"the bad label counted as a failure", `sum(swarmvault_requests_total{outcome="label_error"})`, badBefore + 1},
		{"request latencies", `sum(swarmvault_request_duration_seconds_count)`, 3},
		{"task tokens created in Vault", `sum(swarmvault_vault_requests_total{operation="token_create",status="200"})`, 2},
		{"the plugin's login", `sum(swarmvault_logins_total{outcome="ok"})`, 1},
		{"the plugin's token time left", `swarmvault_token_ttl_seconds`, 60},
		{"this manager leads", `swarmvault_leader`, 1},
	} {
		var v float64
		waitFor(t, "Prometheus to show "+c.what, time.Minute, func() (bool, string) {
			var ok bool
			v, ok = promQuery(t, c.query)
			return ok && v >= c.atLeast, fmt.Sprintf("%s = %v (ok %v), want at least %v", c.query, v, ok, c.atLeast)
		})
		t.Logf("%s: %s = %v", c.what, c.query, v)
	}
	// A task token: tracked while its task runs, revoked when it ends.
	tokenSvc, tokenSecret := run+"-metricstok", run+"_metricstok"
	f.putPolicy(t, tokenSvc, readRules("secret/data/"+run+"/*"))
	createDriverSecret(t, tokenSecret, map[string]string{"vault.type": "token"})
	createService(t, tokenSvc, nil, tokenSecret)
	waitRunning(t, tokenSvc, 1)
	revokedBefore := before(`sum(swarmvault_revocations_total{outcome="ok"})`)
	waitFor(t, "Prometheus to show the tracked task token", time.Minute, func() (bool, string) {
		v, ok := promQuery(t, `swarmvault_tracked_credentials`)
		return ok && v >= 1, fmt.Sprintf("%v %v", v, ok)
	})
	docker(t, "service", "rm", tokenSvc)
	waitFor(t, "Prometheus to show the revocation", time.Minute, func() (bool, string) {
		v, ok := promQuery(t, `sum(swarmvault_revocations_total{outcome="ok"})`)
		return ok && v >= revokedBefore+1, fmt.Sprintf("%v %v", v, ok)
	})
	// Bounded labels: no service, secret or path of this run in a scrape.
	_, body := httpGet(t, "http://"+metricsAddr+"/metrics")
	if strings.Contains(body, run) {
		t.Errorf("a name of this run (%s) is in /metrics", run)
	}
}
