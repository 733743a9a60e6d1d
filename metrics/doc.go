// Package metrics serves what an operator scrapes and probes, on
// METRICS_ADDR: Prometheus metrics at /metrics, /healthz (the process
// answers) and /readyz (logged in to Vault with a token that is not about
// to end).
//
// Every label value comes from a short fixed list: secret types, outcomes,
// Vault operations, HTTP status codes, login methods. Never a task or
// service name, a path or a value: a swarm of any size gives the same
// number of series, and nothing a scrape returns names a secret.
//
// The plugin always has its Metrics, so that no caller asks whether
// metrics are on; without METRICS_ADDR nothing is served.
package metrics
