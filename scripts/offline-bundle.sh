#!/usr/bin/env bash
# Make an offline bundle: Airlock's .deb(s) and every .deb they need that a
# stock Debian 12 does not have (CRIU 4.1 from trixie and what it pulls in:
# a newer libc6, gnutls, nftables' libraries, ...), with install.sh, which
# installs them all with no network.  What is "stock" is a dpkg status file:
# by default the one of the stock Debian 12 root that packaging/stock-root.sh
# makes (debootstrap's default set: every required and important package).
# The .debs come from this machine's apt sources (scripts/setup.sh adds
# trixie's, pinned low); nothing else is changed on this machine.
#
# usage: offline-bundle.sh [--stock-status FILE] [--with PKG/RELEASE]... --out DIR DEB...
#   --out DIR            the bundle directory (made; DIR.tar is written too)
#   --stock-status FILE  dpkg status of the target (default: from the stock root)
#   --with PKG/RELEASE   take PKG from RELEASE (default: criu/trixie)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out="" status="" with=()
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift 2 ;;
	--stock-status) status=$2; shift 2 ;;
	--with) with+=("$2"); shift 2 ;;
	-h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "offline-bundle: unknown option '$1' (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ -z "$out" ] || [ $# = 0 ]; then
	echo "usage: offline-bundle.sh [options] --out DIR DEB... (see --help)" >&2
	exit 2
fi
[ "$(id -u)" = 0 ] || { echo "offline-bundle: must run as root (apt downloads)" >&2; exit 1; }
[ ${#with[@]} -gt 0 ] || with=(criu/trixie)
debs=()
for d in "$@"; do
	[ -f "$d" ] || { echo "offline-bundle: no such file: $d" >&2; exit 1; }
	debs+=("$(cd "$(dirname "$d")" && pwd)/$(basename "$d")")
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$status" ]; then
	stock=${AIRLOCK_STOCK_ROOT:-/var/lib/airlock/stock-root/debian12.tar}
	[ -f "$stock" ] || { echo "offline-bundle: no $stock (packaging/stock-root.sh makes it) and no --stock-status" >&2; exit 1; }
	tar -xOf "$stock" ./var/lib/dpkg/status >"$work/status"
	status=$work/status
fi

# apt, as on the target: its installed packages are the stock ones; only the
# package lists (and so the mirror) are this machine's.  --download-only
# fetches exactly what installing there would need.
mkdir -p "$work/archives/partial"
chmod 755 "$work" "$work/archives" # apt downloads as _apt
: >"$work/extended_states"
apt_target=(-o Dir::State::status="$status" -o Dir::State::extended_states="$work/extended_states"
	-o Dir::Cache::archives="$work/archives/" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
	-o Debug::NoLocking=1 -o APT::Install-Recommends=false)
# A package taken from a newer release (CRIU from trixie) needs some of its
# dependencies from there too (libc6, which needs base-files, ...), and apt's
# resolver does not go looking for them: each round, the packages it names
# in "unmet dependencies" (either side) are taken from that release as well, until it
# resolves (or names nothing new).
release=${with[0]#*/}
for round in $(seq 1 20); do
	if apt-get -q -y --download-only "${apt_target[@]}" install "${debs[@]}" "${with[@]}" >"$work/apt.log" 2>&1; then
		break
	fi
	# " libc-bin : Depends: libc6 (< 2.37) but ...": both sides.
	mapfile -t more < <(sed -n '/unmet dependencies:/,/^E:/p' "$work/apt.log" |
		grep -oE '^ [a-z0-9][a-z0-9.+-]+ :|(Depends|Breaks|PreDepends|Pre-Depends): [a-z0-9][a-z0-9.+-]+' |
		sed 's/^ //; s/ :$//; s/^.*: //' | sort -u)
	added=0
	for p in "${more[@]}"; do
		case " ${with[*]} " in *" $p/"*) continue ;; esac
		with+=("$p/$release")
		added=1
	done
	if [ "$added" = 0 ] || [ "$round" = 20 ]; then
		cat "$work/apt.log" >&2
		echo "offline-bundle: apt cannot resolve the dependencies (apt-get update?)" >&2
		exit 1
	fi
done
echo "offline-bundle: from $release: ${with[*]}"

rm -rf "$out" "$out.tar"
mkdir -p "$out"
cp "${debs[@]}" "$out/"
find "$work/archives" -maxdepth 1 -name '*.deb' -exec cp {} "$out/" \;
install -m 0755 "$top/packaging/offline-install.sh" "$out/install.sh"
(cd "$out" && sha256sum -- *.deb >SHA256SUMS)
tar -C "$(dirname "$out")" -cf "$out.tar" "$(basename "$out")"
echo "offline-bundle: $out ($(find "$out" -name '*.deb' | wc -l) packages, $(du -sh "$out" | cut -f1)) and $out.tar"
