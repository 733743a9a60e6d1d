#!/usr/bin/env bash
# A PostgreSQL server for the dynamic-secret tests, on loopback only:
# Debian's postgresql package, a cluster of the tests' own (not the
# package's), password (scram) authentication over TCP, so that a login
# proves the credentials Vault issued are valid.
#
#   e2e/postgres.sh start   install if needed, start; prints host:port
#   e2e/postgres.sh halt    stop the server, keep the cluster (a fault: `start` brings it back)
#   e2e/postgres.sh restart halt, then start
#   e2e/postgres.sh stop    stop and remove the cluster
#
# The superuser is postgres; its password is in .e2e/postgres-password, for
# the tests to configure Vault's database engine with.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.e2e"
mkdir -p "$state"
port=${PG_PORT:-5433}
# Outside the work tree: the postgres user must reach it.
dir=${PG_DIR:-/var/tmp/swarmvault-postgres}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres() {
	[ -n "$(bindir)" ] && return
	[ "$(id -u)" = 0 ] || { log "need root to install postgresql"; exit 1; }
	log "installing Debian's postgresql"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
	# The package may start its own cluster; the tests use theirs.
	pg_ctlcluster --force "$(basename "$(dirname "$(bindir)")")" main stop >/dev/null 2>&1 || true
}

as_postgres() { runuser -u postgres -- "$@"; }

start() {
	ensure_postgres
	local bin
	bin=$(bindir)
	if [ -d "$dir" ] && { [ ! -s "$state/postgres-password" ] || [ "$(cat "$dir/owner" 2>/dev/null)" != "$state" ]; }; then
		# A cluster another checkout made (a CI clone): its password is
		# there, not here (this checkout may hold an older one). Start
		# afresh.
		log "a cluster in $dir made for another checkout than $state: making a new one"
		as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$dir"
	fi
	if as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		echo "127.0.0.1:$port"
		return
	fi
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		chown postgres: "$dir"
		head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$state/postgres-password"
		install -o postgres -m 600 "$state/postgres-password" "$dir/pwfile"
		as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
			--pwfile="$dir/pwfile" >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
		rm -f "$dir/pwfile"
		echo "$state" >"$dir/owner"
	fi
	log "starting PostgreSQL on 127.0.0.1:$port (log: $dir/log)"
	as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
	echo "127.0.0.1:$port"
}

halt() {
	local bin
	bin=$(bindir)
	[ -d "$dir/data" ] || { log "no cluster in $dir to halt"; exit 1; }
	as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

stop() {
	local bin
	bin=$(bindir)
	[ -n "$bin" ] && [ -d "$dir/data" ] && as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	rm -rf "$dir" "$state/postgres-password"
}

case "${1:-}" in
start) start ;;
halt) halt ;;
restart)
	halt
	start
	;;
stop) stop ;;
*)
	echo "usage: $0 start|halt|restart|stop" >&2
	exit 2
	;;
esac
