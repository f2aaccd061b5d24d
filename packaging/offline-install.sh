#!/bin/sh
# Install Airlock from this offline bundle (scripts/offline-bundle.sh made
# it), with no network: apt installs the .debs of this directory, and only
# them (no package list, no download).  Run as root on Debian 12.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "install.sh: must run as root" >&2; exit 1; }
cd "$here"
sha256sum --quiet -c SHA256SUMS
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
# No source list and an empty list directory: apt sees only these .debs and
# what is installed, so it never tries the network.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$empty" \
	-o Dir::State::Lists="$empty" \
	"$here"/*.deb
echo "install.sh: installed $(dpkg-query -W -f='${Package} ${Version}' airlock)"
