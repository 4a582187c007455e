#!/bin/sh
# Install dtk from this bundle, offline: binaries, the systemd unit, a default
# configuration, /etc/dtk/tls, the dtk user and /var/lib/dtk. Nothing is
# downloaded, started or enabled. Run it as root from the unpacked bundle:
#
#   sudo ./install.sh --keyring dtk-release-key.gpg   # binaries in /usr/local/bin
#   ./install.sh --root /tmp/img --keyring KEY        # into another root (an image, a test)
#
# Before anything else it checks that SHA256SUMS is signed by the dtk release
# key (gpgv, with the public key you got from the release page and checked the
# fingerprint of) and that every file matches SHA256SUMS, and refuses to go on
# otherwise. On Debian/Ubuntu and RHEL-like systems the packages in packages/
# do the same through dpkg or rpm, which also remove it cleanly.
set -eu

usage() {
	cat <<'USAGE'
usage: install.sh [--keyring FILE | --allow-unsigned] [--prefix DIR] [--root DIR] [--no-user]
  --keyring FILE    the dtk release public key (dtk-release-key.gpg, or .asc when gpg
                    is installed) to check SHA256SUMS.asc with; default
                    /usr/share/keyrings/dtk-release-key.gpg when it exists
  --allow-unsigned  install although the signature cannot be checked (no key, or an
                    unsigned build); the checksums are still checked
  --prefix DIR      where bin/ goes, as seen on the target (default /usr/local)
  --root DIR        install into DIR as if it were / (default /)
  --no-user         do not create the dtk user (files stay owned by root)
USAGE
}

prefix=/usr/local
root=
make_user=1
keyring=
allow_unsigned=0
default_keyring=/usr/share/keyrings/dtk-release-key.gpg
while [ $# -gt 0 ]; do
	case "$1" in
		--prefix) prefix="${2:?--prefix needs a folder}"; shift 2 ;;
		--prefix=*) prefix="${1#*=}"; shift ;;
		--root) root="${2:?--root needs a folder}"; shift 2 ;;
		--root=*) root="${1#*=}"; shift ;;
		--no-user) make_user=0; shift ;;
		--keyring) keyring="${2:?--keyring needs a file}"; shift 2 ;;
		--keyring=*) keyring="${1#*=}"; shift ;;
		--allow-unsigned) allow_unsigned=1; shift ;;
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

case "$keyring" in
	"" | /*) ;;
	*) keyring="$(pwd)/$keyring" ;;
esac
if [ -z "$keyring" ] && [ -f "$default_keyring" ]; then
	keyring=$default_keyring
fi

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify_signature checks SHA256SUMS.asc, made by the release key, against
# the public key in $keyring, with gpgv (which trusts only that keyring).
verify_signature() {
	command -v gpgv >/dev/null 2>&1 ||
		die "gpgv not found (apt-get install gpgv, or dnf install gnupg2): cannot check the bundle's signature"
	[ -r "$keyring" ] || die "cannot read the key $keyring"
	kr=$keyring
	if head -c 64 "$keyring" | grep -q -- '-----BEGIN PGP'; then
		command -v gpg >/dev/null 2>&1 ||
			die "$keyring is ASCII-armored and gpg is not installed to read it: use dtk-release-key.gpg"
		gpg --batch --quiet --homedir "$tmp" --dearmor <"$keyring" >"$tmp/keyring.gpg" ||
			die "cannot read the key in $keyring"
		kr=$tmp/keyring.gpg
	fi
	if ! gpgv --homedir "$tmp" --status-fd 3 --keyring "$kr" SHA256SUMS.asc SHA256SUMS \
		3>"$tmp/status" >"$tmp/gpgv.out" 2>&1; then
		cat "$tmp/gpgv.out" >&2
		die "the signature of SHA256SUMS does not verify with $keyring: this bundle was altered, or was not signed by that key. Do not install it"
	fi
	fpr=$(awk '$2 == "VALIDSIG" { print $3 }' "$tmp/status")
	say "SHA256SUMS is signed by the release key $fpr"
}

# 1. The bundle is the one the release key signed, and whole.
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found (coreutils): cannot check the bundle"
if [ -f SHA256SUMS.asc ] && [ -n "$keyring" ]; then
	verify_signature
elif [ "$allow_unsigned" = 1 ]; then
	if [ -f SHA256SUMS.asc ]; then
		echo "install.sh: WARNING: not checking this bundle's signature (--allow-unsigned, no --keyring)" >&2
	else
		echo "install.sh: WARNING: this bundle is NOT SIGNED; installing it anyway (--allow-unsigned)" >&2
	fi
elif [ -f SHA256SUMS.asc ]; then
	die "no key to check this bundle's signature with: pass --keyring dtk-release-key.gpg (the release's public key, whose fingerprint you checked; docs/install.md), or put it at $default_keyring"
elif [ -n "$keyring" ]; then
	die "this bundle is not signed (no SHA256SUMS.asc), so it cannot be checked against $keyring: get a signed release, or pass --allow-unsigned to install it anyway"
else
	die "this bundle is not signed (no SHA256SUMS.asc): pass --allow-unsigned to install it anyway (a development build)"
fi
sha256sum --check --quiet SHA256SUMS || die "checksums do not match: the bundle is damaged or altered, copy it again"

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
