#!/usr/bin/env bash
# A swarm of N managers on this machine, each a Docker engine in a network
# namespace of its own, as production swarms have 3 or 5 managers and only
# the leader calls the plugin. Root only. The route, and its pitfalls, were
# measured first: ../shared/notes/testbed.md, "A multi-manager swarm".
#
#   e2e/cluster.sh up [N]    start N (default 3) managers of one swarm; idempotent
#   e2e/cluster.sh env I     print export DOCKER_HOST=… for node I: eval "$(e2e/cluster.sh env 2)"
#   e2e/cluster.sh leader    print the index of the node that leads now
#   e2e/cluster.sh kill I    SIGKILL node I's dockerd (its containers and plugin live on, as after a crash)
#   e2e/cluster.sh start I   start node I's dockerd again, after what a kill left is cleared; it rejoins
#   e2e/cluster.sh partition I  cut node I off from the other nodes and from Vault, the registry and
#                            PostgreSQL (iptables in its namespace drops all it sends and receives
#                            on its link; its engine and containers run on, reachable on its socket)
#   e2e/cluster.sh heal I    remove node I's partition
#   e2e/cluster.sh nodes     print the indices of the nodes
#   e2e/cluster.sh down      remove engines, namespaces, bridge, forwarders and the iptables rule
#
# Every node reaches the dev Vault (127.0.0.1:8200), a second one for
# side-by-side instances (127.0.0.1:8201), the persistent one the fault
# campaign seals and restarts (127.0.0.1:8202), the registry (127.0.0.1:5000) and PostgreSQL (127.0.0.1:5433)
# at the same loopback address as the host: socat forwards
# each node's loopback port to the bridge address, and the bridge address to
# the host's loopback. So a plugin (host network = its node's namespace) and
# a --network host task use http://127.0.0.1:8200 on every node. Traffic goes
# only to loopback and to the addresses of the namespaces made here.
#
# Engines: Debian's dockerd 20.10 on every node, except the nodes listed in
# CURRENT_ENGINE_NODES (e.g. "3"), which run a current engine built by
# e2e/engine.sh: a mixed-version swarm, as users have in the middle of an
# engine upgrade. `up` records the choice, so `kill` and `start` keep it.
#
# State: .e2e/cluster/ (node count, engine choice, logs, forwarder pids);
# engines under /var/lib/svnI (data) and /run/svnI (exec root, socket, pid).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.e2e/cluster"
bridge=svbr0
net=192.168.239 # the bridge's /24, this test bed's own
host_ip=$net.1
ports=(8200 8201 8202 5000 5433) # forwarded into every node: Vault, a second Vault, the persistent Vault, registry, PostgreSQL
images=(swarmvault-test/busybox:latest swarmvault-test/pgclient:latest swarmvault-test/tlsserver:latest)

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

node_ip() { echo "$net.$((10 + $1))"; }
sock() { echo "/run/svn$1/docker.sock"; }
dk() {
	local i=$1
	shift
	docker -H "unix://$(sock "$i")" "$@"
}
in_ns() {
	local i=$1
	shift
	# nsenter, not ip netns exec: the latter remounts /sys, and dockerd then
	# fails with "Devices cgroup isn't mounted".
	nsenter --net="/var/run/netns/svn$i" "$@"
}
nodes() {
	[ -s "$state/count" ] || return 0
	seq 1 "$(cat "$state/count")"
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ensure_tools() {
	[ "$(id -u)" = 0 ] || die "the cluster bed needs root"
	local missing=()
	command -v socat >/dev/null || missing+=(socat)
	command -v ip >/dev/null || missing+=(iproute2)
	command -v nsenter >/dev/null || missing+=(util-linux)
	command -v iptables >/dev/null || missing+=(iptables)
	if [ ${#missing[@]} -gt 0 ]; then
		log "installing ${missing[*]}"
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
	fi
	# The host engine: the dockerd binary, and the test images to copy.
	"$root/e2e/docker.sh" images >/dev/null
}

# forward PIDFILE NETNS-PREFIX LISTEN-ADDR PORT TARGET-ADDR: a socat
# forwarder, started unless the one recorded runs.
forward() {
	local pidfile=$1 prefix=$2 listen=$3 port=$4 target=$5
	alive "$pidfile" && return 0
	# shellcheck disable=SC2086
	nohup $prefix socat "TCP-LISTEN:$port,bind=$listen,reuseaddr,fork" "TCP:$target:$port" >/dev/null 2>&1 &
	echo $! >"$pidfile"
	disown
}

setup_bridge() {
	if ! ip link show "$bridge" >/dev/null 2>&1; then
		ip link add "$bridge" type bridge
		ip addr add "$host_ip/24" dev "$bridge"
	fi
	ip link set "$bridge" up
	# The host's dockerd sets FORWARD to DROP and bridged traffic passes
	# iptables (br_netfilter): without this the joins time out.
	local chain=DOCKER-USER
	iptables -n -L "$chain" >/dev/null 2>&1 || chain=FORWARD
	iptables -C "$chain" -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null ||
		iptables -I "$chain" -i "$bridge" -o "$bridge" -j ACCEPT
	for port in "${ports[@]}"; do
		forward "$state/fwd-host-$port.pid" "" "$host_ip" "$port" 127.0.0.1
	done
}

setup_netns() {
	local i=$1
	if ! ip netns list | grep -qw "svn$i"; then
		ip netns add "svn$i"
	fi
	if ! ip link show "svv$i" >/dev/null 2>&1; then
		ip link add "svv$i" type veth peer name "svp$i"
		ip link set "svp$i" netns "svn$i"
		in_ns "$i" ip link set "svp$i" name eth0
		in_ns "$i" ip addr add "$(node_ip "$i")/24" dev eth0
		in_ns "$i" ip link set eth0 up
		in_ns "$i" ip link set lo up
	fi
	ip link set "svv$i" master "$bridge" up
	for port in "${ports[@]}"; do
		forward "$state/fwd-svn$i-$port.pid" "nsenter --net=/var/run/netns/svn$i" 127.0.0.1 "$port" "$host_ip"
	done
}

# clear_node I: stop every process node I left (its dockerd, containerd,
# shims, plugin, containers; a SIGKILLed dockerd leaves them all running)
# and unmount what they mounted. The forwarders are started again after.
clear_node() {
	local i=$1 pids p
	pids=$(ip netns pids "svn$i" 2>/dev/null || true)
	for p in /proc/[0-9]*; do
		case "$(readlink "$p/root" 2>/dev/null)" in
		/var/lib/svn$i/*) pids="$pids ${p#/proc/}" ;;
		esac
	done
	# shellcheck disable=SC2086
	[ -n "${pids// /}" ] && kill -9 $pids 2>/dev/null || true
	rm -f "$state"/fwd-svn"$i"-*.pid
	sleep 0.5
	{ grep -E " /(var/lib|run)/svn$i(/| )" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
}

start_engine() {
	local i=$1
	if dk "$i" info >/dev/null 2>&1; then
		return
	fi
	clear_node "$i"
	setup_netns "$i"
	mkdir -p "/run/svn$i" "/var/lib/svn$i"
	# The current engine's directory holds its dockerd and the runc it needs.
	local engine=""
	[ -s "$state/engine-svn$i" ] && engine="PATH=$(cat "$state/engine-svn$i"):\$PATH "
	log "starting node $i ($(node_ip "$i"), ${engine:+current engine, }log: $state/svn$i.log)"
	# Its own hostname, so that node.hostname tells the nodes apart.
	nohup nsenter --net="/var/run/netns/svn$i" unshare --uts sh -c "hostname svn$i; ${engine}exec dockerd \
		--data-root /var/lib/svn$i --exec-root /run/svn$i/exec --pidfile /run/svn$i/docker.pid \
		-H unix://$(sock "$i") --bridge none --iptables=false" >>"$state/svn$i.log" 2>&1 &
	disown
	for _ in $(seq 1 60); do
		dk "$i" info >/dev/null 2>&1 && return
		sleep 1
	done
	tail -n 20 "$state/svn$i.log" >&2
	die "node $i's dockerd did not answer within 60 s"
}

load_images() {
	local i=$1
	for image in "${images[@]}"; do
		# By ID: the host's image may have been rebuilt since.
		[ "$(dk "$i" image inspect -f '{{.Id}}' "$image" 2>/dev/null)" = "$(docker image inspect -f '{{.Id}}' "$image")" ] ||
			docker save "$image" | dk "$i" load -q >/dev/null
	done
}

swarm_state() { dk "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo down; }

# A manager that is in the swarm and answers, to take join tokens from.
a_manager() {
	local i
	for i in $(nodes); do
		if [ "$(swarm_state "$i")" = active ] && dk "$i" swarm join-token -q manager >/dev/null 2>&1; then
			echo "$i"
			return
		fi
	done
}

join() {
	local i=$1 m token
	[ "$(swarm_state "$i")" = active ] && return
	m=$(a_manager)
	if [ -z "$m" ]; then
		log "initialising the swarm on node $i"
		dk "$i" swarm init --advertise-addr "$(node_ip "$i")" >/dev/null
		return
	fi
	token=$(dk "$m" swarm join-token -q manager)
	for _ in 1 2 3; do
		# A join that timed out leaves the node in state error: leave, retry.
		[ "$(swarm_state "$i")" = inactive ] || dk "$i" swarm leave --force >/dev/null 2>&1 || true
		if dk "$i" swarm join --token "$token" --advertise-addr "$(node_ip "$i")" "$(node_ip "$m"):2377" >/dev/null 2>&1; then
			return
		fi
		sleep 2
	done
	die "node $i could not join the swarm"
}

up() {
	local n=${1:-3} i
	ensure_tools
	mkdir -p "$state"
	[ -s "$state/count" ] && [ "$(cat "$state/count")" -gt "$n" ] && n=$(cat "$state/count")
	echo "$n" >"$state/count"
	setup_bridge
	for i in $(nodes); do
		if [[ " ${CURRENT_ENGINE_NODES:-} " == *" $i "* ]]; then
			"$root/e2e/engine.sh" build >"$state/engine-svn$i"
		fi
	done
	for i in $(nodes); do
		setup_netns "$i"
		start_engine "$i"
		load_images "$i"
	done
	for i in $(nodes); do
		join "$i"
	done
	# Wait until every node is a reachable manager and one leads.
	for _ in $(seq 1 60); do
		if [ "$(dk "$(a_manager)" node ls --filter role=manager --format '{{.ManagerStatus}}' 2>/dev/null | grep -cE 'Leader|Reachable')" = "$n" ]; then
			log "$n managers up; leader: node $(leader)"
			return
		fi
		sleep 1
	done
	die "the managers did not all become reachable"
}

leader() {
	local i
	for i in $(nodes); do
		# A manager cut off from the others may take its time to answer.
		if [ "$(timeout 10 docker -H "unix://$(sock "$i")" node inspect self --format '{{.ManagerStatus.Leader}}' 2>/dev/null)" = true ]; then
			echo "$i"
			return
		fi
	done
	return 1
}

kill_node() {
	local i=$1
	[ -s "/run/svn$i/docker.pid" ] || die "node $i has no dockerd pid"
	kill -9 "$(cat "/run/svn$i/docker.pid")"
	rm -f "/run/svn$i/docker.pid"
}

start_node() {
	local i=$1
	start_engine "$i"
	for _ in $(seq 1 60); do
		[ "$(swarm_state "$i")" = active ] && return
		sleep 1
	done
	die "node $i did not rejoin the swarm"
}

# partition I: drop every packet node I sends or receives on its link to
# the bridge, in its own namespace: the other managers, and (through the
# forwarders on the bridge address) Vault, the registry and PostgreSQL. A
# DROP, not a REJECT: connections hang, as behind a failed switch.
partition() {
	local i=$1 rule
	[ -e "/var/run/netns/svn$i" ] || die "node $i has no namespace"
	for rule in "INPUT -i eth0" "OUTPUT -o eth0"; do
		# shellcheck disable=SC2086
		in_ns "$i" iptables -C $rule -m comment --comment swarmvault-partition -j DROP 2>/dev/null ||
			in_ns "$i" iptables -I $rule -m comment --comment swarmvault-partition -j DROP
	done
}

heal() {
	local i=$1 rule
	for rule in "INPUT -i eth0" "OUTPUT -o eth0"; do
		# shellcheck disable=SC2086
		while in_ns "$i" iptables -D $rule -m comment --comment swarmvault-partition -j DROP 2>/dev/null; do :; done
	done
}

down() {
	local i
	# Nodes of the count file, and any namespace an interrupted run left.
	for i in $( (nodes; ip netns list 2>/dev/null | sed -n 's/^svn\([0-9]*\).*/\1/p') | sort -un); do
		clear_node "$i"
		ip netns del "svn$i" 2>/dev/null || true
		ip link del "svv$i" 2>/dev/null || true
		rm -rf "/var/lib/svn$i" "/run/svn$i"
	done
	for f in "$state"/fwd-*.pid; do
		[ -e "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	ip link del "$bridge" 2>/dev/null || true
	for chain in DOCKER-USER FORWARD; do
		iptables -D "$chain" -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null || true
	done
	rm -f "$state/count" "$state"/engine-svn*
	log "down"
}

cmd=${1:-}
shift || true
case "$cmd" in
up) up "$@" ;;
env) echo "export DOCKER_HOST=unix://$(sock "${1:?node index}")" ;;
leader) leader ;;
kill) kill_node "${1:?node index}" ;;
start) start_node "${1:?node index}" ;;
partition) partition "${1:?node index}" ;;
heal) heal "${1:?node index}" ;;
nodes) nodes ;;
down) down ;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
	exit 2
	;;
esac
