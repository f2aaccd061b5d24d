#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for Airlock: packages, CRIU >= 4.1 from
# trixie (pinned low so nothing else moves to trixie), the meson build and the
# base root filesystems.  Idempotent: a second run only rebuilds what changed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "setup: must run as root (installs packages)" >&2
		exit 1
	fi
}

PACKAGES=(
	build-essential dpkg-dev xz-utils meson ninja-build pkg-config clang-format
	libseccomp-dev libcap-dev libnl-3-dev libnl-route-3-dev libcjson-dev
	libmicrohttpd-dev libnghttp2-dev libcurl4-openssl-dev libarchive-dev libssl-dev libauparse-dev
	libaudit-dev libxml2-dev libhttp-parser-dev
	busybox-static debootstrap iproute2 iptables curl python3 python3-jsonschema python3-yaml nodejs
	# tests/integration/test_operations.py parses /v1/metrics with the reference parser
	python3-prometheus-client
	# the GCS service-account keys of test_stores.py and test_bucket_mounts.py
	python3-cryptography
	crun runc bubblewrap util-linux hyperfine
	# git_repo manifest entries (cloned on the host) and bucket mounts (rclone over FUSE)
	git rclone fuse3
	# the harness's run queue (airlock-harness worker --db) and its tests' PostgreSQL
	libpq-dev postgresql
	# test images built and saved by real tools (tests/integration/test_images.py)
	buildah podman skopeo zstd
	# the real-terminal tests of `airlock exec -it` (tests/integration/test_tty.py)
	tmux
	# allowlists that name hosts: airlockd's resolver parses DNS with ldns;
	# tests/integration/test_network.py's upstream is dnsmasq in a test namespace
	libldns-dev dnsmasq-base
	# the fuzz targets (tests/fuzz): clang, its libFuzzer and sanitizer
	# runtimes, and llvm-symbolizer for readable reports
	clang libclang-rt-14-dev llvm
	# build-asan: clang 19's AddressSanitizer, whose runtime locks its
	# allocator across fork().  airlockd is multi-threaded and its helpers
	# allocate after fork (glibc's malloc allows that); under GCC 12's
	# runtime a helper forked while another thread held an allocator lock
	# hung on it (a file operation with "no answer in 60 s" in CI).
	clang-19 libclang-rt-19-dev
)

# From trixie, because CRIU from trixie brings trixie's libraries and bookworm's -dev
# packages want the older ones: protobuf-c for the gateway's Modal gRPC service
# (gateway/proto), libnftables for sandbox allowlists (runtime/daemon/network.c).
TRIXIE_PACKAGES=(libprotobuf-c-dev protobuf-c-compiler libnftables-dev nftables)

missing_packages() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
	done
}

# The trixie source reuses the mirror URI this machine already uses for
# bookworm, so nothing here names a registry host.
setup_trixie_source() {
	local src=/etc/apt/sources.list.d/airlock-trixie.sources
	local pin=/etc/apt/preferences.d/airlock-trixie.pref
	[ -f "$src" ] && [ -f "$pin" ] && return 1
	local uri=""
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
	fi
	if [ -z "$uri" ]; then
		echo "setup: cannot find the bookworm mirror URI to reuse for trixie" >&2
		exit 1
	fi
	cat >"$pin.tmp" <<PIN
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
	mv "$pin.tmp" "$pin"
	cat >"$src.tmp" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	mv "$src.tmp" "$src"
	return 0
}

criu_ok() {
	command -v criu >/dev/null 2>&1 || return 1
	local v
	v=$(criu --version 2>/dev/null | awk '/^Version:/ {print $2}')
	[ -n "$v" ] || return 1
	# >= 4.1
	[ "$(printf '%s\n4.1\n' "$v" | sort -V | head -n1)" = "4.1" ]
}

install_packages() {
	local miss
	miss=$(missing_packages "${PACKAGES[@]}")
	local updated=0
	if setup_trixie_source; then
		apt-get update -q
		updated=1
	fi
	if [ -n "$miss" ]; then
		[ $updated = 1 ] || apt-get update -q
		updated=1
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $miss
	fi
	if ! criu_ok; then
		[ $updated = 1 ] || apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t trixie criu
	fi
	miss=$(missing_packages "${TRIXIE_PACKAGES[@]}")
	if [ -n "$miss" ]; then
		[ $updated = 1 ] || apt-get update -q
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends -t trixie $miss
	fi
}

# A build directory configured before meson.build set localstatedir=/var
# keeps Debian's /var/local (its default for the /usr/local prefix), and
# airlockd's compiled-in defaults (state, rootfs, images) would move to
# /var/local/lib/airlock: pinned here, also on an existing directory.
pin_localstatedir() {
	local dir=$1
	if ! meson introspect --buildoptions "$dir" | python3 -c '
import json, sys
sys.exit(0 if any(o["name"] == "localstatedir" and o["value"] == "/var"
                  for o in json.load(sys.stdin)) else 1)'; then
		meson configure "$dir" -Dlocalstatedir=/var
	fi
}

build() {
	if [ ! -f build/build.ninja ]; then
		meson setup build --buildtype=debugoptimized
	elif [ "$reconfigure" = 1 ]; then
		meson setup --reconfigure build
	fi
	pin_localstatedir build
	ninja -C build
	# A build-asan made by an earlier setup with GCC: meson cannot change a
	# build directory's compiler, so it is made again.
	if [ -f build-asan/build.ninja ] && ! grep -q 'clang-19' build-asan/build.ninja; then
		rm -rf build-asan
	fi
	if [ ! -f build-asan/build.ninja ]; then
		CC=clang-19 meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
			--buildtype=debug
	elif [ "$reconfigure" = 1 ]; then
		meson setup --reconfigure build-asan
	fi
	pin_localstatedir build-asan
	ninja -C build-asan
	# The libFuzzer targets (docs/fuzzing.md): clang, every library with
	# the fuzzer's coverage hooks and ASan+UBSan.  Only the targets are
	# built here: the rest of this tree is what build-asan already has.
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined \
			-Db_lundef=false --buildtype=debugoptimized
	elif [ "$reconfigure" = 1 ]; then
		meson setup --reconfigure build-fuzz
	fi
	pin_localstatedir build-fuzz
	ninja -C build-fuzz fuzzers
}

# npm packages pinned in DIR/package-lock.json (written without registry
# URLs: npm uses its configured registry), installed with npm ci again only
# when the lock changes.  Debian's nodejs has no npm; NodeSource's does.
npm_ci_if_changed() {
	local dir=$1 stamp=$1/node_modules/.airlock-lock-sha256 want
	if ! command -v npm >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm
	fi
	want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	(cd "$dir" && npm ci --no-audit --no-fund)
	echo "$want" >"$stamp"
}

# The official SDKs that the gateway and provider tests drive (tests/).
install_node_packages() {
	npm_ci_if_changed tests
}

# Docker's own default seccomp profile (moby profiles/seccomp/default.json),
# for the security battery's "Docker's profile loads unchanged" test.  Debian
# ships it in golang-github-docker-docker-dev, whose Go build dependencies
# cannot be installed beside trixie's libzstd1 (pulled in by CRIU), so the
# package is fetched with apt and only that one file is unpacked from it.
DOCKER_PROFILE=/var/lib/airlock/docker-seccomp/default.json
install_docker_profile() {
	[ -s "$DOCKER_PROFILE" ] && return 0
	local tmp member=./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as _apt
	(cd "$tmp" && apt-get download -q golang-github-docker-docker-dev >/dev/null)
	mkdir -p "$tmp/x" "$(dirname "$DOCKER_PROFILE")"
	dpkg-deb --fsys-tarfile "$tmp"/golang-github-docker-docker-dev_*.deb | tar -x -C "$tmp/x" "$member"
	install -m 0644 "$tmp/x/$member" "$DOCKER_PROFILE.tmp"
	mv "$DOCKER_PROFILE.tmp" "$DOCKER_PROFILE"
	rm -rf "$tmp"
}

# clients/js: the SandboxClient for the OpenAI Agents SDK, built with its
# pinned dev dependencies; tsc runs only when a source changed.
install_client_js() {
	local dir=clients/js
	npm_ci_if_changed "$dir"
	if [ ! -f "$dir/dist/index.js" ] || [ -n "$(find "$dir/src" "$dir/tsconfig.json" "$dir/node_modules/.airlock-lock-sha256" -newer "$dir/dist/index.js" -print -quit)" ]; then
		(cd "$dir" && ./node_modules/.bin/tsc -p tsconfig.json)
		touch "$dir/dist/index.js"
	fi
}

# The OpenAPI 3.1 JSON Schema, for tests/integration/test_openapi.py's check
# of docs/openapi.yaml.  Debian ships it in python3-openapi-spec-validator,
# which only trixie has and which would pull trixie's python3 along; so, as
# for Docker's profile, the package is fetched with apt and only that file
# is unpacked from it.
OAS31_SCHEMA=/var/lib/airlock/openapi/oas-3.1-schema.json
install_oas31_schema() {
	[ -s "$OAS31_SCHEMA" ] && return 0
	local tmp member=./usr/lib/python3/dist-packages/openapi_spec_validator/resources/schemas/v3.1/schema.json
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as _apt
	(cd "$tmp" && apt-get download -q python3-openapi-spec-validator >/dev/null)
	mkdir -p "$tmp/x" "$(dirname "$OAS31_SCHEMA")"
	dpkg-deb --fsys-tarfile "$tmp"/python3-openapi-spec-validator_*.deb | tar -x -C "$tmp/x" "$member"
	install -m 0644 "$tmp/x/$member" "$OAS31_SCHEMA.tmp"
	mv "$OAS31_SCHEMA.tmp" "$OAS31_SCHEMA"
	rm -rf "$tmp"
}

# The `airlock` CLI talks HTTP to airlockd over a Unix socket and nothing
# else, yet Debian's libcurl drags ~35 shared libraries (TLS, Kerberos, LDAP,
# SSH, IDN, ...) into every invocation: 3.2 of the 3.7 ms an `airlock` run
# spends before it sends a byte.  So the CLI links a static libcurl built
# from Debian's own source package of the installed version, with HTTP and
# Unix sockets only.  Rebuilt when the installed libcurl4 changes version
# (security updates); meson falls back to the system libcurl without it.
CLI_CURL_PREFIX=/opt/airlock/curl-http
CLI_CURL_CONFIGURE=(
	--disable-shared --enable-static --with-pic
	--without-ssl --without-zlib --without-brotli --without-zstd --without-libidn2
	--without-libpsl --without-nghttp2 --without-librtmp --without-libssh2
	--without-gssapi --without-libgsasl
	--disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet
	--disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp
	--disable-gopher --disable-mqtt --disable-ftp --disable-file --disable-manual
	--disable-ntlm --disable-alt-svc --disable-cookies --disable-hsts --disable-proxy
	--disable-netrc --disable-progress-meter --disable-doh --disable-mime
	--disable-websockets --disable-dateparse --disable-threaded-resolver
	--disable-socketpair
)

# deb-src entries for the suites this machine already uses (same URIs), so
# `apt-get source` works; trixie is left out on purpose.
setup_source_index() {
	local src=/etc/apt/sources.list.d/airlock-src.sources
	local lst=/etc/apt/sources.list.d/airlock-src.list
	if [ -f "$src" ] || [ -f "$lst" ]; then
		return 1
	fi
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
		     /(^|\n)Types:[^\n]*deb/ && !/trixie/ {
		         sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' \
			/etc/apt/sources.list.d/debian.sources >"$src.tmp"
	elif [ -f /etc/apt/sources.list ]; then
		src=$lst
		awk '$1 == "deb" && $0 !~ /trixie/ { $1 = "deb-src"; print }' \
			/etc/apt/sources.list >"$src.tmp"
	fi
	if [ ! -s "$src.tmp" ]; then
		rm -f "$src.tmp"
		echo "setup: cannot find this machine's Debian sources to add deb-src for" >&2
		exit 1
	fi
	mv "$src.tmp" "$src"
	return 0
}

# Unpack Debian's source package $1 at version $2 into $3/src ($3: a new
# directory).  With $4 = newest, the newest the index has when $2 is gone.
fetch_debian_source() {
	local pkg=$1 ver=$2 dir=$3
	if setup_source_index || ! apt-get source --print-uris -q "$pkg" >/dev/null 2>&1; then
		apt-get update -q
	fi
	chmod 755 "$dir" # apt downloads as _apt
	if ! (cd "$dir" && apt-get source -q --download-only "$pkg=$ver" >/dev/null 2>&1); then
		[ "${4:-}" = newest ] || { echo "setup: no source of $pkg $ver" >&2; return 1; }
		(cd "$dir" && apt-get source -q --download-only "$pkg" >/dev/null)
	fi
	dpkg-source -x "$dir/${pkg}"_*.dsc "$dir/src" >/dev/null
}

build_cli_curl() {
	local ver stamp want tmp
	ver=$(dpkg-query -W -f='${source:Version}' libcurl4)
	want="$ver $(printf '%s ' "${CLI_CURL_CONFIGURE[@]}" | sha256sum | cut -c1-16)"
	stamp=$CLI_CURL_PREFIX/.stamp
	if [ -f "$CLI_CURL_PREFIX/lib/libcurl.a" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	echo "setup: building the CLI's HTTP-only libcurl from Debian's curl $ver"
	tmp=$(mktemp -d)
	# The installed version if the index still has it, else the newest.
	fetch_debian_source curl "$ver" "$tmp" newest
	(cd "$tmp/src" && ./configure -q --prefix="$CLI_CURL_PREFIX" "${CLI_CURL_CONFIGURE[@]}" >/dev/null &&
		make -s -j"$(nproc)" -C lib >/dev/null)
	rm -rf "$CLI_CURL_PREFIX.tmp"
	mkdir -p "$CLI_CURL_PREFIX.tmp/lib" "$CLI_CURL_PREFIX.tmp/include/curl"
	install -m 0644 "$tmp/src/lib/.libs/libcurl.a" "$CLI_CURL_PREFIX.tmp/lib/"
	install -m 0644 "$tmp"/src/include/curl/*.h "$CLI_CURL_PREFIX.tmp/include/curl/"
	echo "$want" >"$CLI_CURL_PREFIX.tmp/.stamp"
	rm -rf "$CLI_CURL_PREFIX"
	mv "$CLI_CURL_PREFIX.tmp" "$CLI_CURL_PREFIX"
	rm -rf "$tmp"
	reconfigure=1
}

# airlock-init runs once per sandbox creation, and as a dynamic program it
# spent ~0.3 ms of each loading its five libraries (cJSON, libseccomp,
# libcap, libnl-3, libnl-route-3).  Debian ships static archives of all but
# cJSON, so setup builds libcjson.a from Debian's own source package of the
# installed version, with Debian's hardening flags, and meson links
# airlock-init statically with it.  Rebuilt when libcjson1 or one of those
# archives changes version; without it airlock-init stays dynamic.
INIT_CJSON_PREFIX=/opt/airlock/cjson-static
build_init_cjson() {
	local want stamp tmp
	# The static archives it is linked with count too: a security update of
	# any of them rebuilds libcjson.a, which makes ninja relink airlock-init.
	want=$(dpkg-query -W -f='${Package}=${source:Version} ' \
		libcjson1 libseccomp-dev libcap-dev libnl-3-dev libnl-route-3-dev libc6-dev)
	stamp=$INIT_CJSON_PREFIX/.stamp
	if [ -f "$INIT_CJSON_PREFIX/lib/libcjson.a" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	echo "setup: building a static cJSON for airlock-init from Debian's cjson source"
	tmp=$(mktemp -d)
	# The installed version only: its header is the one the build includes.
	fetch_debian_source cjson "$(dpkg-query -W -f='${source:Version}' libcjson1)" "$tmp"
	# shellcheck disable=SC2046
	(cd "$tmp/src" && cc $(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS) \
		-fPIC -c cJSON.c -o cJSON.o && ar rcs libcjson.a cJSON.o)
	rm -rf "$INIT_CJSON_PREFIX.tmp"
	mkdir -p "$INIT_CJSON_PREFIX.tmp/lib"
	install -m 0644 "$tmp/src/libcjson.a" "$INIT_CJSON_PREFIX.tmp/lib/"
	echo "$want" >"$INIT_CJSON_PREFIX.tmp/.stamp"
	rm -rf "$INIT_CJSON_PREFIX"
	mv "$INIT_CJSON_PREFIX.tmp" "$INIT_CJSON_PREFIX"
	rm -rf "$tmp"
	reconfigure=1
}

need_root
install_packages
install_docker_profile
install_oas31_schema
# Called as plain commands, so that `set -e` stops setup at any failing
# step inside them; each sets reconfigure=1 when it built something.
reconfigure=0
build_cli_curl
build_init_cjson
build
install_client_js
install_node_packages
"$top/rootfs/build-busybox.sh"
if [ "${AIRLOCK_SKIP_DEBIAN_ROOTFS:-0}" != 1 ]; then
	"$top/rootfs/build-debian.sh"
fi
# The stock Debian 12 root the install suite installs the package into.
if [ "${AIRLOCK_SKIP_STOCK_ROOT:-0}" != 1 ]; then
	"$top/packaging/stock-root.sh"
fi
echo "setup: done"
