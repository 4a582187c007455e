#!/bin/sh
# dtk postinstall (deb postinst configure [OLD-VERSION], rpm %post 1|2).
# Nothing is started or enabled here: the operator configures the node
# first. An upgrade keeps /etc/dtk/agent.hcl and leaves a running agent on
# the old version until it is restarted (the agent may be the one running
# this upgrade).
set -e
root="${DPKG_ROOT:-}"
[ "$root" = "/" ] && root=""

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

case "$1" in
	configure)
		if [ -n "$2" ]; then upgrade=1; else upgrade=0; fi
		;;
	2) upgrade=1 ;;
	*) upgrade=0 ;;
esac

# On first install the data folder and the configuration belong to dtk (by
# number, read from the root being installed, so that this also holds under
# DPKG_ROOT); later the operator's choices stand.
uid=$(awk -F: '$1 == "dtk" { print $3 }' "$root/etc/passwd")
gid=$(awk -F: '$1 == "dtk" { print $4 }' "$root/etc/passwd")
if [ "$upgrade" = 0 ] && [ -n "$uid" ] && [ -n "$gid" ]; then
	mkdir -p "$root/var/lib/dtk"
	chown "$uid:$gid" "$root/var/lib/dtk"
	chmod 0750 "$root/var/lib/dtk"
	if [ -f "$root/etc/dtk/agent.hcl" ]; then
		chown "0:$gid" "$root/etc/dtk/agent.hcl"
	fi
fi

# Keys and certificates go in /etc/dtk/tls, root's alone (the package makes
# it 0700; a folder that was there before the package is made so too, on
# first install only).
if [ "$upgrade" = 0 ] && [ -d "$root/etc/dtk/tls" ]; then
	chown 0:0 "$root/etc/dtk/tls"
	chmod 0700 "$root/etc/dtk/tls"
fi

if [ "$upgrade" = 1 ]; then
	cat <<'MSG'
dtk upgraded; your /etc/dtk/agent.hcl was kept. A running agent stays on the
old version until you restart it:  systemctl restart dtk-agent
MSG
else
	cat <<'MSG'
dtk installed. Nothing was started or enabled. Next:
  1. edit /etc/dtk/agent.hcl (serf_addr, join, labels; coordinator settings)
  2. check it:      dtk-agent config check /etc/dtk/agent.hcl
  3. start it now and at every boot:  systemctl enable --now dtk-agent
See /usr/share/doc/dtk/install.md or docs/install.md.
MSG
fi
