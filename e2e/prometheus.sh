#!/usr/bin/env bash
# A Prometheus for the metrics test, on loopback only: Debian's prometheus
# package, a config of our own that scrapes the plugin's METRICS_ADDR every
# second. Idempotent.
#
#   e2e/prometheus.sh start   install and start unless one answers; prints host:port
#   e2e/prometheus.sh stop    stop the Prometheus started by `start`, drop its data
#
# State: .e2e/prometheus/ (config, data, log, pid).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.e2e/prometheus"
listen=${PROMETHEUS_ADDR:-127.0.0.1:9091}
# The plugin's METRICS_ADDR in the tests.
target=${METRICS_TARGET:-127.0.0.1:9650}

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }

answers() { curl --noproxy '*' -s -f -o /dev/null --max-time 2 "http://$listen/-/ready"; }

start() {
	if answers; then
		echo "$listen"
		return
	fi
	if ! command -v prometheus >/dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || { log "prometheus is missing and we are not root to install it"; exit 1; }
		log "installing Debian's prometheus"
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null
		# The package may start its own (on 9090); the tests use theirs.
		pkill -x -f '/usr/bin/prometheus' 2>/dev/null || true
	fi
	rm -rf "$state/data"
	mkdir -p "$state/data"
	cat >"$state/prometheus.yml" <<-YAML
		global:
		  scrape_interval: 1s
		  evaluation_interval: 1s
		scrape_configs:
		  - job_name: swarmvault
		    static_configs:
		      - targets: ['$target']
	YAML
	log "starting on $listen, scraping $target (log: $state/prometheus.log)"
	nohup prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/data" \
		--web.listen-address="$listen" >>"$state/prometheus.log" 2>&1 &
	echo $! >"$state/prometheus.pid"
	for _ in $(seq 1 100); do
		if answers; then
			echo "$listen"
			return
		fi
		sleep 0.2
	done
	log "Prometheus did not answer; last log lines:"
	tail -n 20 "$state/prometheus.log" >&2
	exit 1
}

stop() {
	if [ -f "$state/prometheus.pid" ]; then
		kill "$(cat "$state/prometheus.pid")" 2>/dev/null || true
		rm -f "$state/prometheus.pid"
	fi
	rm -rf "$state/data"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
