# Shared by install-test.sh and probe-test.sh; sourced, not run.
#
# Both scripts take the same options (cmake/CMakeLists.txt passes them):
#   --build-dir=DIR --source-dir=DIR --cmake=PATH --cc=PATH
#   --prefix=DIR --libdir=DIR --includedir=DIR (absolute, as configured)
#   --version=X.Y.Z --soversion=N --sanitize=LIST (may be empty)
#   --thread-libs=FLAGS (what a static link needs for pthreads; may be empty)
#
# install_tree installs the build tree into a scratch DESTDIR, so every
# check looks at exactly what a packager would ship.  check and fail
# record results; finish prints the summary and sets the exit status.
# The scratch directory is removed when everything passed and kept (and
# named) otherwise.

# sort, comm and the tools' messages must not depend on the user's locale.
LC_ALL=C
export LC_ALL

BUILD_DIR= SOURCE_DIR= CMAKE=cmake CC=cc PREFIX= LIBDIR= INCLUDEDIR=
VERSION= SOVERSION= SANITIZE= THREAD_LIBS=

for arg in "$@"; do
	case $arg in
	--build-dir=*)	BUILD_DIR=${arg#*=} ;;
	--source-dir=*)	SOURCE_DIR=${arg#*=} ;;
	--cmake=*)	CMAKE=${arg#*=} ;;
	--cc=*)		CC=${arg#*=} ;;
	--prefix=*)	PREFIX=${arg#*=} ;;
	--libdir=*)	LIBDIR=${arg#*=} ;;
	--includedir=*)	INCLUDEDIR=${arg#*=} ;;
	--version=*)	VERSION=${arg#*=} ;;
	--soversion=*)	SOVERSION=${arg#*=} ;;
	--sanitize=*)	SANITIZE=${arg#*=} ;;
	--thread-libs=*) THREAD_LIBS=${arg#*=} ;;
	*)		echo "$0: unknown argument $arg" >&2; exit 2 ;;
	esac
done
for v in BUILD_DIR SOURCE_DIR PREFIX LIBDIR INCLUDEDIR VERSION SOVERSION; do
	eval "val=\$$v"
	if [ -z "$val" ]; then
		echo "$0: missing --$(echo "$v" | tr 'A-Z_' 'a-z-')" >&2
		exit 2
	fi
done

# A sanitized library needs its runtime in every program linked with it.
SAN_FLAGS=
if [ -n "$SANITIZE" ]; then
	SAN_FLAGS="-fsanitize=$SANITIZE -fno-omit-frame-pointer"
fi

npass=0
nfail=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/libimsg-test.XXXXXX") || exit 1
LOG=$WORK/log

pass()
{
	npass=$((npass + 1))
	echo "ok - $*"
}

fail()
{
	nfail=$((nfail + 1))
	echo "not ok - $*"
}

# check DESCRIPTION COMMAND...: runs COMMAND with its output in $LOG,
# shows that output only when it fails, and returns COMMAND's success.
check()
{
	_what=$1
	shift
	if "$@" >"$LOG" 2>&1; then
		pass "$_what"
		return 0
	fi
	fail "$_what"
	sed 's/^/#   /' "$LOG"
	return 1
}

finish()
{
	echo "$npass passed, $nfail failed"
	if [ "$nfail" -ne 0 ]; then
		echo "# scratch files kept in $WORK"
		exit 1
	fi
	rm -rf "$WORK"
	exit 0
}

# Install into $WORK/root; D_LIBDIR and D_INCLUDEDIR are where the
# library and header landed.  pkg-config is pointed at that tree only, and
# told to map the module's absolute paths into it.
install_tree()
{
	DESTDIR=$WORK/root
	D_LIBDIR=$DESTDIR$LIBDIR
	D_INCLUDEDIR=$DESTDIR$INCLUDEDIR
	if ! DESTDIR=$DESTDIR "$CMAKE" --install "$BUILD_DIR" \
	    >"$WORK/install.log" 2>&1; then
		fail "cmake --install $BUILD_DIR with DESTDIR"
		sed 's/^/#   /' "$WORK/install.log"
		finish
	fi
	pass "cmake --install into DESTDIR=$DESTDIR"

	PKG_CONFIG_LIBDIR=$D_LIBDIR/pkgconfig
	PKG_CONFIG_PATH=
	PKG_CONFIG_SYSROOT_DIR=$DESTDIR
	# Keep -I/usr/include and -L/usr/lib for a /usr prefix: inside the
	# sysroot they are not the system's directories.
	PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1
	PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
	export PKG_CONFIG_LIBDIR PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
	export PKG_CONFIG_ALLOW_SYSTEM_CFLAGS PKG_CONFIG_ALLOW_SYSTEM_LIBS
}
