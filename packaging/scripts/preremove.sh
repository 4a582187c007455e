#!/bin/sh
# dtk preremove (deb prerm remove|upgrade|..., rpm %preun 0|1). On removal
# (not on upgrade) stop and disable the service: its binary is going away.
set -e
root="${DPKG_ROOT:-}"
[ "$root" = "/" ] && root=""

case "$1" in
	remove | 0)
		if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
			if [ -d /run/systemd/system ]; then
				systemctl stop dtk-agent.service >/dev/null 2>&1 || true
			fi
			systemctl --no-reload disable dtk-agent.service >/dev/null 2>&1 || true
		fi
		;;
esac
