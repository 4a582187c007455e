#!/bin/sh
# dtk postremove (deb postrm remove|purge|upgrade|..., rpm %postun 0|1).
# The state in /var/lib/dtk (a coordinator's Raft data among it) and the
# dtk user are kept, even on purge: remove them by hand when the node is
# gone for good.
set -e
root="${DPKG_ROOT:-}"
[ "$root" = "/" ] && root=""

case "$1" in
	remove | purge | 0)
		if [ -z "$root" ] && [ -d /run/systemd/system ]; then
			systemctl daemon-reload >/dev/null 2>&1 || true
		fi
		if [ "$1" = purge ] && [ -d "$root/var/lib/dtk" ]; then
			echo "dtk: kept /var/lib/dtk and the dtk user; remove them by hand if this node is gone for good"
		fi
		;;
esac
