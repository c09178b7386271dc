#!/bin/sh
# Install what building and testing libimsg needs, if it is missing.
#
# Written for Debian 12 and its derivatives (apt-get); run it as root, or
# as a user with sudo.  When everything is already there it installs
# nothing and needs no privileges, so it is safe to run every time.
# Elsewhere it names what is missing and fails.
#
# What for:
#   cmake make gcc   the build
#   g++              checks that <imsg.h> compiles as C++
#   clang            the second compiler CI builds with; libFuzzer
#   libc6-dev        the C library headers (gcc only recommends them)
#   libclang-rt-N-dev  clang's sanitizer and libFuzzer runtimes
#   pkg-config       the install test builds a consumer through it
#   mandoc           lints the man pages
#   valgrind         the memcheck pass
#   musl-tools       musl-gcc: CI builds and tests against musl too
#   abigail-tools    abidw and abidiff: the abi_baseline test

set -eu

# command:the Debian package that provides it
TOOLS="cmake:cmake make:make gcc:gcc g++:g++ clang:clang
    pkg-config:pkg-config mandoc:mandoc valgrind:valgrind nm:binutils
    readelf:binutils objdump:binutils musl-gcc:musl-tools
    abidiff:abigail-tools abidw:abigail-tools"

# Prints the packages of TOOLS whose command is missing, once each.
missing_tools()
{
	for t in $TOOLS; do
		command -v "${t%%:*}" >/dev/null 2>&1 || echo "${t#*:}"
	done | sort -u
}

has_deb()
{
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null |
	    grep -q 'install ok installed'
}

# Libraries have no command to look for; ask dpkg.  clang's runtimes
# come in a package named after its major version (14 on Debian 12), so
# this runs after clang is installed.
missing_libs()
{
	command -v dpkg-query >/dev/null 2>&1 || return 0
	has_deb libc6-dev || echo libc6-dev
	v=$(clang --version 2>/dev/null |
	    sed -n 's/.*clang version \([0-9][0-9]*\).*/\1/p' | head -n 1)
	if [ -n "$v" ]; then
		has_deb "libclang-rt-$v-dev" || echo "libclang-rt-$v-dev"
	fi
}

updated=no

# install_pkgs PACKAGE...: with apt-get, as root or through sudo.
install_pkgs()
{
	echo "setup.sh: installing: $*"
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "setup.sh: no apt-get here; install these yourself: $*" >&2
		exit 1
	fi
	if [ "$(id -u)" -eq 0 ]; then
		as_root=
	elif command -v sudo >/dev/null 2>&1; then
		as_root=sudo
	else
		echo "setup.sh: run as root to install: $*" >&2
		exit 1
	fi
	if [ "$updated" = no ]; then
		$as_root env DEBIAN_FRONTEND=noninteractive apt-get update
		updated=yes
	fi
	$as_root env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y --no-install-recommends "$@" </dev/null
}

# The lists are package names, one word each: split on purpose.
# shellcheck disable=SC2046
pkgs=$(missing_tools)
[ -z "$pkgs" ] || install_pkgs $pkgs
pkgs=$(missing_libs)
[ -z "$pkgs" ] || install_pkgs $pkgs
echo "setup.sh: everything needed is installed"
