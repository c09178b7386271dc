#!/bin/sh
# Check a source tarball the way a packager uses it: unpack it in a clean
# temporary directory, configure it with -Werror, build it and run its
# whole test suite there, and check that the version in its name is the
# one its build gives the library, pkg-config and the CMake package.
#
#   sh scripts/dist-check.sh [TARBALL]
#
# Without TARBALL it makes one first: "cmake --build BUILD --target dist"
# in BUILD (default build-dist), which writes BUILD/libimsg-VERSION.tar.gz
# from git HEAD.  JOBS (default 2) is the build's parallelism; CC may
# name the compiler.  The temporary directory is removed when everything
# passed and kept (and named) otherwise.

set -eu

LC_ALL=C
export LC_ALL

cd "$(dirname "$0")/.."
SRC=$(pwd)
JOBS=${JOBS:-2}

if [ $# -ge 1 ]; then
	TARBALL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
	BUILD=${BUILD:-build-dist}
	cmake -S "$SRC" -B "$BUILD" -DLIBIMSG_TESTS=OFF -DLIBIMSG_EXAMPLES=OFF \
	    -DLIBIMSG_BENCH=OFF -DLIBIMSG_FUZZ=OFF >/dev/null
	cmake --build "$BUILD" --target dist
	TARBALL=$(ls -t "$BUILD"/libimsg-*.tar.gz | head -n 1)
	TARBALL=$(cd "$(dirname "$TARBALL")" && pwd)/$(basename "$TARBALL")
fi

name=$(basename "$TARBALL" .tar.gz)
VERSION=${name#libimsg-}
case $VERSION in
[0-9]*.[0-9]*.[0-9]*) ;;
*) echo "dist-check: $TARBALL is not named libimsg-X.Y.Z.tar.gz" >&2; exit 1 ;;
esac
MAJOR=${VERSION%%.*}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/libimsg-dist.XXXXXX")
ok=no
cleanup()
{
	if [ "$ok" = yes ]; then
		rm -rf "$WORK"
	else
		echo "dist-check: FAILED; files kept in $WORK" >&2
	fi
}
trap cleanup EXIT

step()
{
	printf '\n==> %s\n' "$*"
}

step "unpack $TARBALL in $WORK"
tar -xzf "$TARBALL" -C "$WORK"
TOP=$WORK/$name
[ -f "$TOP/CMakeLists.txt" ] || {
	echo "dist-check: the tarball has no $name/CMakeLists.txt" >&2
	exit 1
}
# A tarball holds sources only: no build tree, no git metadata.
if find "$TOP" -name CMakeCache.txt -o -name .git | grep -q .; then
	echo "dist-check: the tarball contains build or git files:" >&2
	find "$TOP" -name CMakeCache.txt -o -name .git >&2
	exit 1
fi

step "configure, build (-j$JOBS) and test, outside any git checkout"
set -- -S "$TOP" -B "$WORK/build" -DLIBIMSG_WERROR=ON \
    -DCMAKE_INSTALL_PREFIX=/usr
[ -z "${CC:-}" ] || set -- "$@" -DCMAKE_C_COMPILER="$CC"
(cd "$WORK" && cmake "$@")
cmake --build "$WORK/build" -j"$JOBS"
ctest --test-dir "$WORK/build" --output-on-failure

step "the version $VERSION reaches the library, pkg-config and CMake"
DESTDIR=$WORK/root cmake --install "$WORK/build" >/dev/null
lib=$(find "$WORK/root" -name "libimsg.so.$VERSION" | head -n 1)
[ -n "$lib" ] || { echo "dist-check: no libimsg.so.$VERSION installed" >&2; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libimsg.so.$MAJOR" ] ||
    { echo "dist-check: SONAME $soname, want libimsg.so.$MAJOR" >&2; exit 1; }
pc=$(find "$WORK/root" -name libimsg.pc | head -n 1)
grep -qx "Version: $VERSION" "$pc" ||
    { echo "dist-check: $pc does not say Version: $VERSION" >&2; exit 1; }
cv=$(find "$WORK/root" -name libimsgConfigVersion.cmake | head -n 1)
grep -q "set(PACKAGE_VERSION \"$VERSION\")" "$cv" ||
    { echo "dist-check: $cv is not for $VERSION" >&2; exit 1; }
echo "$lib: SONAME $soname; libimsg.pc and the CMake package say $VERSION"

ok=yes
printf '\ndist-check: %s builds and passes its tests from a clean directory\n' \
    "$(basename "$TARBALL")"
