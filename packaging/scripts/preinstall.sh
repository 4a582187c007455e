#!/bin/sh
# dtk preinstall (deb preinst install|upgrade, rpm %pre 1|2): create the dtk
# system user and group, so that /var/lib/dtk and /etc/dtk/agent.hcl can be
# theirs. Under `dpkg --root DIR --force-script-chrootless` DPKG_ROOT names
# the root being installed; the user is created there.
set -e
root="${DPKG_ROOT:-}"
[ "$root" = "/" ] && root=""

if grep -q '^dtk:' "$root/etc/passwd" 2>/dev/null; then
	exit 0
fi
if command -v useradd >/dev/null 2>&1; then
	set -- --system --home-dir /var/lib/dtk --no-create-home --shell /usr/sbin/nologin --comment "dtk agent"
	if grep -q '^dtk:' "$root/etc/group" 2>/dev/null; then
		set -- "$@" --gid dtk
	else
		set -- "$@" --user-group
	fi
	if [ -n "$root" ]; then
		set -- "$@" --prefix "$root"
	fi
	useradd "$@" dtk
elif command -v adduser >/dev/null 2>&1 && [ -z "$root" ]; then
	# BusyBox
	grep -q '^dtk:' /etc/group 2>/dev/null || addgroup -S dtk
	adduser -S -D -H -h /var/lib/dtk -s /sbin/nologin -G dtk dtk
else
	echo "dtk: cannot create the dtk user (no useradd): create a system user and group named dtk, then retry" >&2
	exit 1
fi
