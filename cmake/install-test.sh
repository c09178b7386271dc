#!/bin/sh
# install_consumer: install the build tree into a scratch DESTDIR, then
# build cmake/consumer/consumer.c against it the three ways a user would
# and run each result:
#   (a) cc $(pkg-config --cflags --libs libimsg)       -> libimsg.so
#   (b) pkg-config --static, linking libimsg.a           -> no libimsg.so
#   (c) a CMake project with find_package(libimsg)       -> both targets
# Options: see cmake/testlib.sh.

. "$(dirname "$0")/testlib.sh"

CONSUMER=$SOURCE_DIR/cmake/consumer

# Prints the DT_NEEDED entries of an ELF file.
needed()
{
	readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'
}

# links_shared PROGRAM: it loads libimsg.so.N, and from the DESTDIR.
links_shared()
{
	needed "$1" | grep -qx "libimsg\.so\.$SOVERSION" || {
		echo "$1 does not need libimsg.so.$SOVERSION:"
		needed "$1"
		return 1
	}
	LD_LIBRARY_PATH=$D_LIBDIR list_loaded "$1" |
	    grep -F "$D_LIBDIR/libimsg.so.$SOVERSION" || {
		echo "the loader does not resolve libimsg from $D_LIBDIR:"
		LD_LIBRARY_PATH=$D_LIBDIR list_loaded "$1"
		return 1
	}
}

# list_loaded PROGRAM: the shared libraries its loader would load.  A
# musl program needs musl's loader; glibc's ldd cannot read it.
list_loaded()
{
	_interp=$(readelf -l "$1" 2>/dev/null |
	    sed -n 's/.*program interpreter: \(.*\)]/\1/p')
	case $_interp in
	*ld-musl-*)	"$_interp" --list "$1" ;;
	*)		ldd "$1" ;;
	esac
}

# links_static PROGRAM: libimsg is linked in, not loaded.
links_static()
{
	if needed "$1" | grep -q '^libimsg'; then
		echo "$1 still needs a shared libimsg:"
		needed "$1"
		return 1
	fi
	nm "$1" | grep -q ' T imsgbuf_init$' || {
		echo "imsgbuf_init is not defined in $1"
		return 1
	}
}

run_shared()
{
	LD_LIBRARY_PATH=$D_LIBDIR "$1"
}

# No LD_LIBRARY_PATH: nothing of libimsg may be needed at run time.
run_static()
{
	env -u LD_LIBRARY_PATH "$1"
}

installed_files()
{
	st=0
	for f in "$D_INCLUDEDIR/imsg.h" \
	    "$D_LIBDIR/libimsg.so.$VERSION" \
	    "$D_LIBDIR/libimsg.a" \
	    "$D_LIBDIR/pkgconfig/libimsg.pc" \
	    "$D_LIBDIR/cmake/libimsg/libimsgConfig.cmake" \
	    "$D_LIBDIR/cmake/libimsg/libimsgConfigVersion.cmake" \
	    "$D_LIBDIR/cmake/libimsg/libimsgTargets.cmake"; do
		[ -f "$f" ] || { echo "missing: $f"; st=1; }
	done
	# The development link and the soname link, as ldconfig expects.
	for l in "libimsg.so:libimsg.so.$SOVERSION" \
	    "libimsg.so.$SOVERSION:libimsg.so.$VERSION"; do
		target=$(readlink "$D_LIBDIR/${l%%:*}")
		[ "$target" = "${l#*:}" ] ||
		    { echo "${l%%:*} -> '$target', want ${l#*:}"; st=1; }
	done
	return $st
}

pkgconfig_fields()
{
	st=0
	pkg-config --exists --print-errors libimsg || return 1
	v=$(pkg-config --modversion libimsg)
	[ "$v" = "$VERSION" ] || { echo "modversion $v, want $VERSION"; st=1; }
	# echo of the unquoted output drops pkg-config's stray blanks.
	cf=$(echo $(pkg-config --cflags libimsg))
	[ "$cf" = "-I$D_INCLUDEDIR" ] ||
	    { echo "cflags '$cf', want -I$D_INCLUDEDIR"; st=1; }
	l=$(echo $(pkg-config --libs libimsg))
	[ "$l" = "-L$D_LIBDIR -limsg" ] ||
	    { echo "libs '$l', want -L$D_LIBDIR -limsg"; st=1; }
	want=$(echo -L"$D_LIBDIR" -limsg $THREAD_LIBS)
	l=$(echo $(pkg-config --static --libs libimsg))
	[ "$l" = "$want" ] ||
	    { echo "libs --static '$l', want $want"; st=1; }
	return $st
}

build_pkgconfig_shared()
{
	# Word splitting of the pkg-config output is what users rely on.
	# shellcheck disable=SC2046
	$CC $SAN_FLAGS -o "$WORK/consumer-shared" "$CONSUMER/consumer.c" \
	    $(pkg-config --cflags --libs libimsg)
}

build_pkgconfig_static()
{
	# -Bstatic makes the linker take libimsg.a for -limsg; the C
	# library stays shared (a sanitizer runtime cannot be static).
	# shellcheck disable=SC2046
	$CC $SAN_FLAGS -o "$WORK/consumer-static" "$CONSUMER/consumer.c" \
	    $(pkg-config --cflags libimsg) \
	    -Wl,-Bstatic $(pkg-config --static --libs libimsg) -Wl,-Bdynamic
}

configure_cmake_consumer()
{
	set -- -S "$CONSUMER" -B "$WORK/cmake-consumer" \
	    -DCMAKE_C_COMPILER="$CC" \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCMAKE_PREFIX_PATH="$DESTDIR$PREFIX" \
	    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
	case $LIBDIR in
	"$PREFIX"/*) ;;
	# A libdir outside the prefix is not searched; name the package.
	*) set -- "$@" -Dlibimsg_DIR="$D_LIBDIR/cmake/libimsg" ;;
	esac
	if [ -n "$SAN_FLAGS" ]; then
		set -- "$@" -DCMAKE_C_FLAGS="$SAN_FLAGS"
	fi
	"$CMAKE" "$@" || return 1
	# It must have found this installation, not one on the system.
	dir=$(sed -n 's/^libimsg_DIR:PATH=//p' \
	    "$WORK/cmake-consumer/CMakeCache.txt")
	[ "$dir" = "$D_LIBDIR/cmake/libimsg" ] || {
		echo "found libimsg in '$dir', want $D_LIBDIR/cmake/libimsg"
		return 1
	}
}

build_cmake_consumer()
{
	"$CMAKE" --build "$WORK/cmake-consumer"
}

install_tree
check "installed header, libraries, links, pkg-config and CMake files" \
    installed_files
check "pkg-config reports version, cflags and libs (shared and --static)" \
    pkgconfig_fields

if check "(a) cc \$(pkg-config --cflags --libs libimsg)" \
    build_pkgconfig_shared; then
	check "(a) consumer loads libimsg.so.$SOVERSION from the DESTDIR" \
	    links_shared "$WORK/consumer-shared"
	check "(a) consumer runs" run_shared "$WORK/consumer-shared"
fi

if check "(b) pkg-config --static, linking libimsg.a" \
    build_pkgconfig_static; then
	check "(b) consumer has libimsg linked in" \
	    links_static "$WORK/consumer-static"
	check "(b) consumer runs" run_static "$WORK/consumer-static"
fi

if check "(c) find_package(libimsg) finds the DESTDIR copy" \
    configure_cmake_consumer &&
    check "(c) build with libimsg::imsg and libimsg::imsg_static" \
    build_cmake_consumer; then
	check "(c) libimsg::imsg consumer loads libimsg.so.$SOVERSION" \
	    links_shared "$WORK/cmake-consumer/consumer"
	check "(c) libimsg::imsg consumer runs" \
	    run_shared "$WORK/cmake-consumer/consumer"
	check "(c) libimsg::imsg_static consumer has libimsg linked in" \
	    links_static "$WORK/cmake-consumer/consumer_static"
	check "(c) libimsg::imsg_static consumer runs" \
	    run_static "$WORK/cmake-consumer/consumer_static"
fi

finish
