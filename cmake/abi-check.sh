#!/bin/sh
# abi_baseline: compare the ABI of the built shared library with the
# baseline kept in the tree (abi/libimsg.abi), using libabigail's abidw
# and abidiff (Debian package abigail-tools).
#
#   abi-check.sh check    LIBRARY BASELINE INCLUDEDIR   (ctest abi_baseline)
#   abi-check.sh update   LIBRARY BASELINE INCLUDEDIR   (target abi-baseline)
#   abi-check.sh selftest LIBRARY BASELINE INCLUDEDIR   (ctest abi_baseline_selftest)
#
# Only the public ABI counts: the exported functions, their symbol
# versions, and the types imsg.h defines.  Internal functions and
# variables (hidden, not exported) are left out, and types defined
# elsewhere (the library's own struct msgbuf and struct ibufqueue, which
# imsg.h only declares) are dropped to declarations, so rewriting src/
# cannot trip the check; locations, parameter names, paths and the C
# library's symbols are left out, so the file is the same from any build
# directory, compiler or source path.
#
# Exits 77 (ctest's SKIP_RETURN_CODE) when abidw or abidiff is missing,
# when the library has no debug information to read types from (a
# Release build), or when it was built for another architecture than the
# baseline's.

LC_ALL=C
export LC_ALL

[ $# -eq 4 ] || { echo "usage: $0 check|update|selftest LIBRARY BASELINE INCLUDEDIR" >&2; exit 2; }
MODE=$1 LIB=$2 BASELINE=$3 INCLUDEDIR=$4

skip()
{
	echo "SKIP: $*"
	exit 77
}

for t in abidw abidiff; do
	command -v "$t" >/dev/null 2>&1 ||
	    skip "$t not found (install abigail-tools; scripts/setup.sh does)"
done
[ -f "$LIB" ] || { echo "$LIB: no such file" >&2; exit 1; }
readelf -S "$LIB" 2>/dev/null | grep -q '\.debug_info' ||
    skip "$LIB has no debug information (build with -g, e.g. RelWithDebInfo)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/libimsg-abi.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT

# The ABI description of a library, as the baseline is written.
dump()
{
	abidw --headers-dir "$INCLUDEDIR" --drop-private-types \
	    --exported-interfaces-only \
	    --drop-undefined-syms --no-elf-needed --no-corpus-path \
	    --no-comp-dir-path --no-show-locs --short-locs \
	    --no-parameter-names --out-file "$2" "$1"
}

# compare OLD NEW: abidiff of two descriptions; any change, even an added
# function, is a difference (abidiff exits non-zero for it).
compare()
{
	abidiff --no-show-locs "$1" "$2"
}

arch()
{
	sed -n "s/^<abi-corpus .*architecture='\([^']*\)'.*/\1/p" "$1" | head -n 1
}

dump "$LIB" "$WORK/built.abi" || { echo "abidw failed on $LIB"; exit 1; }

case $MODE in
update)
	mkdir -p "$(dirname "$BASELINE")"
	cp "$WORK/built.abi" "$BASELINE"
	echo "wrote $BASELINE from $LIB"
	exit 0
	;;
check|selftest)
	;;
*)
	echo "$0: unknown mode $MODE" >&2
	exit 2
	;;
esac

[ -f "$BASELINE" ] || { echo "$BASELINE: no such file" >&2; exit 1; }
a=$(arch "$BASELINE") b=$(arch "$WORK/built.abi")
[ "$a" = "$b" ] ||
    skip "the baseline is for $a, this library for $b"

if [ "$MODE" = check ]; then
	if compare "$BASELINE" "$WORK/built.abi"; then
		echo "ok - $LIB has the ABI of $BASELINE"
		exit 0
	fi
	echo "not ok - the ABI of $LIB differs from $BASELINE (above)."
	echo "# If the change is deliberate, see \"The ABI baseline\" in CONTRIBUTING.md."
	exit 1
fi

# selftest: the comparison must pass on the baseline itself and fail on
# each kind of change the check exists for, made to a copy of the baseline.
nfail=0
expect()
{
	_want=$1 _what=$2 _file=$3
	if compare "$BASELINE" "$_file" >"$WORK/log" 2>&1; then
		_got=same
	else
		_got=differs
	fi
	if [ "$_got" = "$_want" ]; then
		echo "ok - $_what: $_got"
	else
		echo "not ok - $_what: $_got, want $_want"
		sed 's/^/#   /' "$WORK/log"
		nfail=$((nfail + 1))
	fi
}

# mutate NAME SED-SCRIPT: a copy of the baseline with one change, which
# must really have changed it (or the case tests nothing).
mutate()
{
	sed "$2" "$BASELINE" >"$WORK/$1.abi"
	if cmp -s "$BASELINE" "$WORK/$1.abi"; then
		echo "not ok - mutation $1 did not change the baseline"
		nfail=$((nfail + 1))
	fi
}

# struct ibuf's fd moves 32 bits on.
mutate layout "/<class-decl name='ibuf' /,/<\/class-decl>/s/layout-offset-in-bits='448'/layout-offset-in-bits='480'/"
# imsg_get_fd disappears under another name.
mutate removed "s/'imsg_get_fd\([@']\)/'imsg_get_fd_gone\1/g"
# imsg_get_fd returns a size_t instead of an int.
sizet=$(sed -n "s/.*<typedef-decl name='size_t' .* id='\([^']*\)'.*/\1/p" \
    "$BASELINE" | head -n 1)
mutate type "/<function-decl name='imsg_get_fd'/,/<\/function-decl>/s/<return type-id='[^']*'/<return type-id='$sizet'/"
# imsg_get_fd moves to another version node.
mutate version "/elf-symbol name='imsg_get_fd'/s/LIBIMSG_1\.0/LIBIMSG_0.9/;s/imsg_get_fd@@LIBIMSG_1\.0/imsg_get_fd@@LIBIMSG_0.9/"

expect same "the baseline against itself" "$BASELINE"
# Internal things stay out of the dump of the built library: nothing of
# the reserved libimsg__ prefix, and the library's own structs only as
# declarations.
if grep -q "name='libimsg__" "$WORK/built.abi"; then
	echo "not ok - internal names in the ABI dump:"
	grep "name='libimsg__" "$WORK/built.abi" | sed 's/^/#   /'
	nfail=$((nfail + 1))
else
	echo "ok - no internal (libimsg__) names in the ABI dump"
fi
for t in msgbuf ibufqueue; do
	if grep "<class-decl name='$t' " "$WORK/built.abi" |
	    grep -qv "is-declaration-only='yes'"; then
		echo "not ok - struct $t, private to src/, is described in full"
		nfail=$((nfail + 1))
	else
		echo "ok - struct $t is only declared in the ABI dump"
	fi
done
expect differs "a moved member of struct ibuf" "$WORK/layout.abi"
expect differs "a removed function" "$WORK/removed.abi"
expect differs "a function with another return type" "$WORK/type.abi"
expect differs "a function in another version node" "$WORK/version.abi"
echo "$nfail failed"
[ "$nfail" -eq 0 ]
