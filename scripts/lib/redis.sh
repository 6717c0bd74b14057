# shellcheck shell=bash
# Redis for the integration tests: source this file, then call
#
#   redis_setup        # install if missing, start a standalone server and a
#                      # 3-master Cluster, export REDIS_ADDR and
#                      # REDIS_CLUSTER_ADDRS, stop everything on exit
#
# or the pieces: redis_install, redis_start_standalone,
# redis_start_cluster, redis_stop_all. Servers listen on free loopback
# ports, keep nothing on disk (no RDB, no AOF) and live under a temporary
# directory that redis_stop_all removes.

REDIS_TMP="${REDIS_TMP:-}"
REDIS_PIDFILES=()

# redis_install [PACKAGE...] installs Debian's redis-server (and redis-cli)
# when missing, and each package named whose command of the same name is
# missing (redis-sentinel).
redis_install() {
	local missing=() p
	command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
	for p in "$@"; do
		command -v "$p" >/dev/null || missing+=("$p")
	done
	if [ ${#missing[@]} = 0 ]; then
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "redis.sh: ${missing[*]} missing and we are not root to install it" >&2
		return 1
	fi
	echo "redis.sh: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${missing[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
	# Debian starts their services (redis-server on 6379); we use our own
	# instances only.
	if command -v systemctl >/dev/null; then
		for p in "${missing[@]}"; do systemctl stop "$p" 2>/dev/null || true; done
	fi
	for p in redis-server "$@"; do
		command -v "$p" >/dev/null || return 1
	done
}

# redis_port_free PORT: true when nothing listens on 127.0.0.1:PORT.
redis_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# redis_free_port: prints a free port whose cluster bus port (+10000) is
# free too. Both lie below the kernel's ephemeral range (ports it hands to
# listeners on port 0, as the Go tests' servers are, and to outgoing
# connections), so that nothing else is given the port between this check
# and the server's bind.
redis_free_port() {
	local p i lo=32768
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	if [ "$lo" -le 12000 ]; then lo=32768; fi
	for i in $(seq 1 200); do
		p=$((10000 + RANDOM % (lo - 10000 - 10000)))
		if redis_port_free "$p" && redis_port_free $((p + 10000)); then
			echo "$p"
			return 0
		fi
	done
	echo "redis.sh: no free port" >&2
	return 1
}

redis_tmp() {
	if [ -z "$REDIS_TMP" ]; then
		REDIS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vigil-redis.XXXXXX")
	fi
}

# redis_wait PORT: waits until the server on PORT answers PING, up to
# 15 s (a loaded machine can take seconds to start one).
redis_wait() {
	local i
	for i in $(seq 1 300); do
		if [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; then return 0; fi
		sleep 0.05
	done
	echo "redis.sh: server on port $1 did not start" >&2
	return 1
}

# redis_server DIR [ARGS...]: starts one daemonized server on a free port,
# which it puts in REDIS_PORT. A server that does not come up (its port
# taken after all, or a start too slow for a loaded machine) is stopped,
# its log shown, and another port tried, three times in all.
redis_server() {
	local dir=$1 try port
	shift
	mkdir -p "$dir"
	for try in 1 2 3; do
		port=$(redis_free_port) || return 1
		redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
			--daemonize yes "$@"
		if redis_wait "$port"; then
			REDIS_PIDFILES+=("$dir/redis.pid")
			REDIS_PORT=$port
			return 0
		fi
		if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
		echo "redis.sh: attempt $try on port $port failed; its log:" >&2
		tail -n 5 "$dir/redis.log" >&2 2>/dev/null || true
		rm -f "$dir/redis.pid" "$dir/nodes.conf"
	done
	return 1
}

# redis_start_standalone: starts one server; exports REDIS_ADDR.
redis_start_standalone() {
	redis_tmp
	redis_server "$REDIS_TMP/standalone" || return 1
	export REDIS_ADDR="127.0.0.1:$REDIS_PORT"
}

# redis_start_cluster: starts three masters and joins them in a Cluster;
# exports REDIS_CLUSTER_ADDRS (comma-separated).
redis_start_cluster() {
	redis_tmp
	local ports=() addrs=() p i
	for i in 1 2 3; do
		redis_server "$REDIS_TMP/cluster-$i" --cluster-enabled yes \
			--cluster-config-file nodes.conf --cluster-node-timeout 2000 || return 1
		p=$REDIS_PORT
		ports+=("$p")
		addrs+=("127.0.0.1:$p")
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$REDIS_TMP/cluster-create.log" 2>&1 ||
		{ cat "$REDIS_TMP/cluster-create.log" >&2; return 1; }
	for p in "${ports[@]}"; do
		for i in $(seq 1 100); do
			if redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then break; fi
			sleep 0.1
		done
	done
	REDIS_CLUSTER_ADDRS=$(IFS=,; echo "${addrs[*]}")
	export REDIS_CLUSTER_ADDRS
}

# redis_stop_all: stops every server started here and removes their files.
redis_stop_all() {
	local f
	for f in "${REDIS_PIDFILES[@]}"; do
		if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; fi
	done
	REDIS_PIDFILES=()
	if [ -n "$REDIS_TMP" ]; then
		sleep 0.2
		rm -rf "$REDIS_TMP"
		REDIS_TMP=
	fi
}

# redis_setup: everything the integration tests need; stops it all on exit
# (keeping any EXIT trap already set, such as scripts/test's for the soak).
redis_setup() {
	redis_install || return 1
	local prev
	prev=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT\$/\1/")
	# shellcheck disable=SC2064
	trap "redis_stop_all${prev:+; $prev}" EXIT
	redis_start_standalone || return 1
	redis_start_cluster || return 1
	echo "redis.sh: REDIS_ADDR=$REDIS_ADDR REDIS_CLUSTER_ADDRS=$REDIS_CLUSTER_ADDRS" >&2
}
