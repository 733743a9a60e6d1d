#!/usr/bin/env bash
# bench/scale.sh on the 3-manager bed (e2e/cluster.sh): the plugin pushed
# to the bed's registry and installed on every manager, as users install it;
# `docker service scale x=N` through the leader, whose dispatcher calls the
# plugin, with tasks on all three nodes. 1 and then 5 secrets per task,
# Vault-backed against native, alternating, ROUNDS rounds each. The bed is
# removed afterwards (CLUSTER_KEEP=1 keeps it).
#
#   bench/cluster-scale.sh [N] [ROUNDS]    default 150 tasks, 3 rounds
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${1:-150}
ROUNDS=${2:-3}
registry=127.0.0.1:5000
tag=bench-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')

e2e/registry.sh start >/dev/null
# Debian's engine on every node: what is measured is the dispatcher's
# calls to the plugin, the same in both engines.
CURRENT_ENGINE_NODES= e2e/cluster.sh up >/dev/null
[ -n "${CLUSTER_KEEP:-}" ] || trap 'e2e/cluster.sh down >/dev/null 2>&1 || true' EXIT
make -s push REGISTRY="$registry" TAG="$tag" >/dev/null

sockets=()
for i in $(e2e/cluster.sh nodes); do
	s=/run/svn$i/docker.sock
	docker -H "unix://$s" plugin rm -f vault >/dev/null 2>&1 || true
	# Disabled: scale.sh gives it its settings, then enables it.
	docker -H "unix://$s" plugin install --grant-all-permissions --disable --alias vault "$registry/swarmvault:$tag" >/dev/null
	sockets+=("$s")
done
leader=$(e2e/cluster.sh leader)
echo "3-manager bed, node $leader leads; plugin $registry/swarmvault:$tag on every manager"
for secrets in 1 5; do
	DOCKER_HOST=unix:///run/svn$leader/docker.sock NODES="${sockets[*]}" PLUGIN=vault SECRETS=$secrets \
		bench/scale.sh "$N" "$ROUNDS"
done
