#!/bin/sh
# Install dtk from this bundle, offline: binaries, the systemd unit, a default
# configuration, /etc/dtk/tls, the dtk user and /var/lib/dtk. Nothing is
# downloaded, started or enabled. Run it as root from the unpacked bundle:
#
#   sudo ./install.sh                    # binaries in /usr/local/bin
#   ./install.sh --root /tmp/img         # into another root (an image, a test)
#
# On Debian/Ubuntu and RHEL-like systems the packages in packages/ do the
# same through dpkg or rpm, which also remove it cleanly.
set -eu

usage() {
	cat <<'USAGE'
usage: install.sh [--prefix DIR] [--root DIR] [--no-user]
  --prefix DIR  where bin/ goes, as seen on the target (default /usr/local)
  --root DIR    install into DIR as if it were / (default /)
  --no-user     do not create the dtk user (files stay owned by root)
USAGE
}

prefix=/usr/local
root=
make_user=1
while [ $# -gt 0 ]; do
	case "$1" in
		--prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
		--prefix=*) prefix="${1#*=}"; shift ;;
		--root) root="${2:?--root needs a folder}"; shift 2 ;;
		--root=*) root="${1#*=}"; shift ;;
		--no-user) make_user=0; shift ;;
		-h | --help) usage; exit 0 ;;
		*) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done
case "$prefix" in
	/*) ;;
	*) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;;
esac
if [ -n "$root" ]; then
	mkdir -p "$root"
	root=$(cd "$root" && pwd)
	[ "$root" = "/" ] && root=""
fi

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

# 1. The bundle is whole.
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils): cannot check the bundle"
sha256sum --check --quiet SHA256SUMS || die "checksums do not match: the bundle is damaged, copy it again"

# 2. It fits this machine (when installing into this machine).
if [ -z "$root" ]; then
	arch=$(cat share/ARCH)
	case "$(uname -m)" in
		x86_64 | amd64) m=amd64 ;;
		aarch64 | arm64) m=arm64 ;;
		*) m=$(uname -m) ;;
	esac
	[ "$m" = "$arch" ] || die "this bundle is for linux-$arch, this machine is $(uname -m): use the linux-$m bundle"
	[ "$(id -u)" = 0 ] || die "run as root (or use --root DIR)"
fi

# 3. The dtk user and group.
uid=0
gid=0
if [ "$make_user" = 1 ]; then
	if ! grep -q '^dtk:' "$root/etc/passwd" 2>/dev/null; then
		command -v useradd >/dev/null 2>&1 || die "useradd not found: create a system user named dtk, or pass --no-user"
		set -- --system --home-dir /var/lib/dtk --no-create-home --shell /usr/sbin/nologin --comment "dtk agent"
		if grep -q '^dtk:' "$root/etc/group" 2>/dev/null; then
			set -- "$@" --gid dtk
		else
			set -- "$@" --user-group
		fi
		[ -n "$root" ] && set -- "$@" --prefix "$root"
		useradd "$@" dtk
		say "created the dtk system user"
	fi
	uid=$(awk -F: '$1 == "dtk" { print $3 }' "$root/etc/passwd")
	gid=$(awk -F: '$1 == "dtk" { print $4 }' "$root/etc/passwd")
fi
own() {
	if [ "$(id -u)" = 0 ]; then chown "$1" "$2"; fi
}

# 4. Binaries.
mkdir -p "$root$prefix/bin"
for b in dtk-agent dtkctl; do
	cp bin/$b "$root$prefix/bin/.$b.new"
	chmod 0755 "$root$prefix/bin/.$b.new"
	mv -f "$root$prefix/bin/.$b.new" "$root$prefix/bin/$b"
done
say "installed $prefix/bin/dtk-agent and $prefix/bin/dtkctl"

# 5. The systemd unit, running the binaries where they now are.
mkdir -p "$root/etc/systemd/system"
sed "s#/usr/bin/dtk-agent#$prefix/bin/dtk-agent#g" share/dtk-agent.service >"$root/etc/systemd/system/dtk-agent.service"
chmod 0644 "$root/etc/systemd/system/dtk-agent.service"
say "installed /etc/systemd/system/dtk-agent.service"

# 6. The configuration: an existing one is kept, the new default goes beside it.
mkdir -p "$root/etc/dtk"
chmod 0755 "$root/etc/dtk"
if [ -e "$root/etc/dtk/agent.hcl" ]; then
	if [ "$(sha256sum <share/agent.hcl)" != "$(sha256sum <"$root/etc/dtk/agent.hcl")" ]; then
		cp share/agent.hcl "$root/etc/dtk/agent.hcl.dist"
		say "kept /etc/dtk/agent.hcl; the new default is /etc/dtk/agent.hcl.dist"
	fi
else
	cp share/agent.hcl "$root/etc/dtk/agent.hcl"
	chmod 0640 "$root/etc/dtk/agent.hcl"
	own "0:$gid" "$root/etc/dtk/agent.hcl"
	say "installed /etc/dtk/agent.hcl"
fi

# 7. The folder for keys and certificates: root's alone.
mkdir -p "$root/etc/dtk/tls"
chmod 0700 "$root/etc/dtk/tls"
own 0:0 "$root/etc/dtk/tls"

# 8. The data folder.
mkdir -p "$root/var/lib/dtk"
chmod 0750 "$root/var/lib/dtk"
own "$uid:$gid" "$root/var/lib/dtk"

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
cat <<MSG
dtk $(cat share/VERSION) installed. Nothing was started or enabled. Next:
  1. edit /etc/dtk/agent.hcl (serf_addr, join, labels; coordinator settings)
  2. check it:      $prefix/bin/dtk-agent config check /etc/dtk/agent.hcl
  3. start it now and at every boot:  systemctl enable --now dtk-agent
MSG
