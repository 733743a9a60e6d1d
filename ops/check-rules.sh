#!/usr/bin/env bash
# Checks what ops/ ships for operators, with Prometheus' own promtool:
#
#   - ops/prometheus/swarmvault.rules.yml parses (promtool check rules) and
#     its alerts fire as ops/prometheus/swarmvault.rules.test.yml says
#     (promtool test rules);
#   - every query of the Grafana dashboard ops/grafana/swarmvault.json parses
#     as PromQL once its variables are substituted ($instance, $__rate_interval),
#     and every panel but rows has one. (The e2e runs them against a Prometheus
#     that scrapes the plugin: e2e/dashboard_test.go.)
#
# Needs promtool (Debian's prometheus package) and jq. As root it installs
# what is missing, without starting the package's Prometheus (policy-rc.d);
# otherwise it says what to install.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

rules=ops/prometheus/swarmvault.rules.yml
tests=ops/prometheus/swarmvault.rules.test.yml
dashboard=ops/grafana/swarmvault.json

log() { printf 'check-rules.sh: %s\n' "$*" >&2; }

policy=/usr/sbin/policy-rc.d
policy_backup=""
policy_ours=false
tmp=""
cleanup() {
	if $policy_ours; then
		if [ -n "$policy_backup" ]; then
			cp -p "$policy_backup" "$policy"
			rm -f "$policy_backup"
		else
			rm -f "$policy"
		fi
		policy_ours=false
	fi
	[ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT

answers9090() { command -v curl >/dev/null 2>&1 && curl --noproxy '*' -s -f -o /dev/null --max-time 2 http://127.0.0.1:9090/-/ready; }

# install_packages PACKAGE...: with apt-get, as root, no service of theirs started:
# Debian's prometheus would start a daemon on :9090 (invoke-rc.d, or
# deb-systemd-invoke under systemd; both obey policy-rc.d's 101).
install_packages() {
	local before=false
	if answers9090; then before=true; fi
	if [ -e "$policy" ]; then
		policy_backup=$(mktemp)
		cp -p "$policy" "$policy_backup"
	fi
	policy_ours=true
	printf '#!/bin/sh\n# ops/check-rules.sh: no service starts while it installs %s\nexit 101\n' "$*" >"$policy"
	chmod 755 "$policy"
	log "installing $* (apt-get)"
	apt-get -o DPkg::Lock::Timeout=300 update -qq
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
	cleanup
	# Under systemd the package's unit is enabled, to start at boot: this
	# script installed it for promtool only.
	if [[ " $* " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
		systemctl disable --quiet prometheus.service 2>/dev/null || true
	fi
	if ! $before && answers9090; then
		log "a Prometheus answers on 127.0.0.1:9090 since the install: stop it (systemctl disable --now prometheus, or invoke-rc.d prometheus stop)"
		exit 1
	fi
}

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		log "missing: ${missing[*]} (promtool is in Debian's prometheus package): as root, apt-get install --no-install-recommends ${missing[*]}, or put promtool and jq on PATH"
		exit 1
	fi
	install_packages "${missing[@]}"
fi

promtool check rules "$rules"
promtool test rules "$tests"

# The dashboard: each target's expr, its variables substituted as Grafana
# would (All instances: a regex; the rate interval: a duration), as a
# recording rule, so that promtool parses it.
tmp=$(mktemp -d)
jq -e '[.. | objects | select(has("gridPos") and .type != "row")
	| select([.targets[]?.expr // empty | select(. != "")] | length == 0) | .title] as $none
	| if ($none | length) > 0 then error("panels without a query: \($none | join(", "))") else true end' \
	"$dashboard" >/dev/null
{
	echo "groups:"
	echo "  - name: dashboard"
	echo "    rules:"
	jq -r '.. | objects | select(has("targets")) | .id as $id | .targets[] | select(.expr)
		| (.expr | gsub("\\$__rate_interval"; "1m") | gsub("\\$instance"; ".*")) as $e
		| if ($e | contains("$")) then error("panel \($id) \(.refId): a variable this check does not substitute: \(.expr)") else . end
		| "      - record: swarmvault_dashboard:panel_\($id)_\(.refId)\n        expr: \($e | tojson)"' "$dashboard"
} >"$tmp/dashboard.rules.yml"
n=$(grep -c 'record:' "$tmp/dashboard.rules.yml")
if ! out=$(promtool check rules "$tmp/dashboard.rules.yml" 2>&1); then
	printf '%s\n' "$out" >&2
	log "a query of $dashboard does not parse (above; panel_<id>_<refId>)"
	exit 1
fi
echo "$dashboard: $n queries parse"
