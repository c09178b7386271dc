#!/bin/sh
# abi_unversioned_binary: a program linked against libimsg.so.1 from
# before the symbols had versions must keep running against the versioned
# library, which the loader picks up under the same soname.
#
#   unversioned-test.sh PROGRAM OLD-LIBDIR NEW-LIBDIR
#
# PROGRAM was linked against OLD-LIBDIR/libimsg.so.1 (built with the old
# anonymous version script) and has no run path; NEW-LIBDIR holds the
# versioned libimsg.so.1 of this build.

LC_ALL=C
export LC_ALL

[ $# -eq 3 ] || { echo "usage: $0 PROGRAM OLD-LIBDIR NEW-LIBDIR" >&2; exit 2; }
PROG=$1 OLD=$2 NEW=$3
LOG=$(mktemp "${TMPDIR:-/tmp}/libimsg-unversioned.XXXXXX") || exit 1
trap 'rm -f "$LOG"' EXIT
nfail=0

# check DESCRIPTION COMMAND...: as in testlib.sh, output shown on failure.
check()
{
	_what=$1
	shift
	if "$@" >"$LOG" 2>&1; then
		echo "ok - $_what"
		return 0
	fi
	echo "not ok - $_what"
	sed 's/^/#   /' "$LOG"
	nfail=$((nfail + 1))
	return 1
}

# The version definitions of a shared object, without the file's own
# base entry.
verdefs()
{
	readelf -V "$1" | sed -n '/Version definition section/,/^$/p' |
	    sed -n 's/.*Flags: none.*Name: \([^ ]*\).*/\1/p'
}

old_is_unversioned()
{
	[ -z "$(verdefs "$OLD/libimsg.so.1")" ] || {
		echo "$OLD/libimsg.so.1 defines versions:"
		verdefs "$OLD/libimsg.so.1"
		return 1
	}
}

new_is_versioned()
{
	verdefs "$NEW/libimsg.so.1" | grep -qx 'LIBIMSG_1\.0' || {
		echo "$NEW/libimsg.so.1 does not define LIBIMSG_1.0:"
		readelf -V "$NEW/libimsg.so.1"
		return 1
	}
}

# The program asks for libimsg.so.1 and for no version of it: that is
# what every program linked before the change looks like.
prog_needs_no_version()
{
	readelf -d "$PROG" | grep -q '(NEEDED).*\[libimsg\.so\.1\]' || {
		echo "$PROG does not need libimsg.so.1"
		return 1
	}
	if readelf -V "$PROG" | grep -q 'File: libimsg'; then
		echo "$PROG requires versions of libimsg:"
		readelf -V "$PROG"
		return 1
	fi
}

# list_loaded: the shared libraries the program's loader would load.  A
# musl program needs musl's loader; glibc's ldd cannot read it.
list_loaded()
{
	_interp=$(readelf -l "$PROG" 2>/dev/null |
	    sed -n 's/.*program interpreter: \(.*\)]/\1/p')
	case $_interp in
	*ld-musl-*)	"$_interp" --list "$PROG" ;;
	*)		ldd "$PROG" ;;
	esac
}

# run_against DIR: the program runs, and the loader took libimsg from DIR.
run_against()
{
	LD_LIBRARY_PATH=$1 list_loaded | grep -F "$1/libimsg.so.1" || {
		echo "the loader does not take libimsg.so.1 from $1:"
		LD_LIBRARY_PATH=$1 list_loaded
		return 1
	}
	LD_LIBRARY_PATH=$1 "$PROG"
}

check "the old library has no symbol versions" old_is_unversioned
check "this build's library defines LIBIMSG_1.0" new_is_versioned
check "the program needs libimsg.so.1 and no version of it" \
    prog_needs_no_version
check "the program runs against the unversioned library it was linked with" \
    run_against "$OLD"
check "the program runs against the versioned library" run_against "$NEW"
echo "$nfail failed"
[ "$nfail" -eq 0 ]
