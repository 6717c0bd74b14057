# shellcheck shell=bash
# Sourced by scripts/test before the browser tests: makes sure Debian's
# chromium is installed (apt-get, when missing and running as root; no
# browser download of any other kind) and exports its path as CHROMIUM,
# which the browser tests (go test -tags browser) read.

vigil_chromium() {
	local bin
	bin=$(command -v chromium || command -v chromium-browser || true)
	if [ -z "$bin" ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "chromium is missing and we are not root: install Debian's chromium package" >&2
			return 1
		fi
		echo "installing Debian's chromium"
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null
		bin=$(command -v chromium || true)
		if [ -z "$bin" ]; then
			echo "chromium still missing after apt-get install" >&2
			return 1
		fi
	fi
	CHROMIUM="$bin"
	export CHROMIUM
	"$CHROMIUM" --version || true
}

vigil_chromium
