# shellcheck shell=bash
# nginx for examples/cluster's test: source this file, then call
#
#   nginx_cluster_install   # install Debian's nginx when missing (as root)
#
# The test (examples/cluster/cluster_integration_test.go) starts its own
# nginx on a free loopback port with examples/cluster/nginx.conf, in a
# temporary prefix, in the foreground, and stops it when it ends; Debian's
# own nginx service, if the package starts one, is stopped here.
# (scripts/lib/nginx.sh, a general helper, is being written on another
# branch; this file only covers this test's needs.)

nginx_cluster_install() {
	if command -v nginx >/dev/null; then
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "nginx-cluster.sh: nginx is missing and we are not root to install it" >&2
		return 1
	fi
	echo "nginx-cluster.sh: installing nginx" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q nginx-light >/dev/null 2>&1 || apt-get install -y -q nginx >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q nginx >/dev/null; }
	if command -v systemctl >/dev/null; then systemctl stop nginx 2>/dev/null || true; fi
	command -v nginx >/dev/null
}
