#!/bin/sh
# configure_probes: install the build tree into a scratch DESTDIR and check
# it the way consumers' configure scripts and packagers look at it:
#  - link probes for the API functions real configure scripts test for,
#    with <sys/types.h>, <sys/queue.h>, <imsg.h> included in that order;
#  - the helpers that bundled copies carry (strlcpy, freezero, ...) must
#    not come from libimsg, or those scripts would stop building their own;
#  - the old pre-2024 names must not link at all;
#  - libimsg.so exports exactly the functions of imsg.h, each under a
#    version node of src/libimsg.map, libimsg.a defines no global outside
#    the API but the reserved libimsg__ prefix;
#  - <imsg.h> alone compiles as strict C99 and as C++.
# Options: see cmake/testlib.sh.

. "$(dirname "$0")/testlib.sh"

# imsg.h declares this many functions; update it with the header.
API_COUNT=96
# How many of them version node LIBIMSG_1.0 holds; this one never changes.
NODE_1_0_COUNT=96

# Functions real configure scripts link-test to detect the library.
PROBED="imsg_add imsgbuf_init ibuf_open msgbuf_new msgbuf_new_reader ibufq_new"

# Names bundled copies define for themselves: if libimsg defined them, a
# configure check would find them there and skip the project's own copy.
HELPERS="strlcpy strlcat freezero recallocarray reallocarray explicit_bzero
    htonll ntohll getdtablecount"

# The API before 2024-11; libimsg deliberately does not provide it, so a
# configure script that looks for it must not find it.
OLD_API="imsg_init imsg_read imsg_flush imsg_clear msgbuf_init msgbuf_drain
    ibuf_add_buf"

install_tree
SHLIB=$D_LIBDIR/libimsg.so.$VERSION
ARCHIVE=$D_LIBDIR/libimsg.a
PROBES=$WORK/probes
mkdir -p "$PROBES"

# The function names imsg.h declares, one a line, sorted.
api_names()
{
	sed 's,/\*.*\*/,,g' "$D_INCLUDEDIR/imsg.h" |
	    grep -oE '\b(ibuf|ibufq|msgbuf|imsg|imsgbuf)_[a-z0-9_]*[[:space:]]*\(' |
	    sed 's/[[:space:](]*$//' | sort -u
}

api_count()
{
	n=$(wc -l <"$WORK/api")
	[ "$n" -eq "$API_COUNT" ] ||
	    { echo "imsg.h declares $n functions, expected $API_COUNT"; return 1; }
}

soname()
{
	s=$(readelf -d "$SHLIB" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
	[ "$s" = "libimsg.so.$SOVERSION" ] ||
	    { echo "SONAME '$s', want libimsg.so.$SOVERSION"; return 1; }
}

# The dynamic symbols libimsg.so defines must be the API, all of it and
# nothing else.  Version nodes show up as absolute symbols; skip them.
shlib_exports()
{
	nm -D --defined-only "$SHLIB" |
	    awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	    sort -u >"$WORK/exports"
	if ! cmp -s "$WORK/api" "$WORK/exports"; then
		echo "< only in imsg.h, > only exported by libimsg.so:"
		diff "$WORK/api" "$WORK/exports"
		return 1
	fi
}

# The version nodes src/libimsg.map defines (lines like "LIBIMSG_1.0 {").
map_nodes()
{
	sed -n 's/^\([A-Za-z][A-Za-z0-9_.]*\)[[:space:]]*{.*/\1/p' \
	    "$SOURCE_DIR/src/libimsg.map" | sort -u
}

# What objdump -T says libimsg.so defines, one "KIND VERSION NAME" a line:
# KIND is "func" for a function in .text, "node" for the absolute symbol
# the linker adds for each version definition, "other" for anything else.
# VERSION is as objdump prints it: in parentheses when it is not the
# symbol's default version.
objdump_defined()
{
	objdump -T "$SHLIB" | awk -F '\t' 'NF == 2 {
		n = split($1, l, " "); split($2, r, " ")
		if (l[n] == "*UND*")
			next
		if (l[n] == "*ABS*" && r[2] == r[3])
			kind = "node"
		else if (l[n] == ".text" && l[3] ~ /F/)
			kind = "func"
		else
			kind = "other"
		print kind, r[2], r[3]
	}' | sort
}

# Every exported function carries a default version from the map, all of
# imsg.h is in the nodes, and the only other dynamic symbols are the
# nodes' own definitions (one per node, none for a node not in the map).
symbol_versions()
{
	map_nodes >"$WORK/nodes"
	[ -s "$WORK/nodes" ] || { echo "no version node in libimsg.map"; return 1; }
	objdump_defined >"$WORK/defined" || return 1
	st=0
	awk '$1 != "func" && $1 != "node"' "$WORK/defined" >"$WORK/bad"
	awk 'NR == FNR { node[$1] = 1; next }
	    $1 == "func" && !($2 in node)' "$WORK/nodes" "$WORK/defined" \
	    >>"$WORK/bad"
	if [ -s "$WORK/bad" ]; then
		echo "defined without a version node of libimsg.map, or not a function:"
		cat "$WORK/bad"
		st=1
	fi
	awk '$1 == "node" { print $3 }' "$WORK/defined" >"$WORK/defnodes"
	if ! cmp -s "$WORK/nodes" "$WORK/defnodes"; then
		echo "< nodes of libimsg.map, > version definitions in libimsg.so:"
		diff "$WORK/nodes" "$WORK/defnodes"
		st=1
	fi
	awk '$1 == "func" { print $3 }' "$WORK/defined" | sort -u \
	    >"$WORK/versioned"
	if ! cmp -s "$WORK/api" "$WORK/versioned"; then
		echo "< in imsg.h, > a versioned function of libimsg.so:"
		diff "$WORK/api" "$WORK/versioned"
		st=1
	fi
	return $st
}

# The 1.0 node is frozen: functions added later go to nodes of their own.
first_node_count()
{
	n=$(objdump_defined | awk '$1 == "func" && $2 == "LIBIMSG_1.0"' |
	    wc -l)
	[ "$n" -eq "$NODE_1_0_COUNT" ] || {
		echo "$n functions in LIBIMSG_1.0, want $NODE_1_0_COUNT"
		return 1
	}
}

# In the archive internal functions stay global (hidden visibility does
# not change that), so they must carry the reserved prefix.
archive_globals()
{
	nm --defined-only -g "$ARCHIVE" | awk 'NF == 3 { print $3 }' |
	    sort -u >"$WORK/globals"
	st=0
	if ! comm -23 "$WORK/api" "$WORK/globals" >"$WORK/missing" ||
	    [ -s "$WORK/missing" ]; then
		echo "API functions libimsg.a does not define:"
		cat "$WORK/missing"
		st=1
	fi
	comm -13 "$WORK/api" "$WORK/globals" | grep -v '^libimsg__' |
	    if [ -n "$SANITIZE" ]; then
		# Instrumentation adds globals of its own.
		grep -Ev '^(__asan|__odr_asan|__ubsan|__sancov|__tsan|__msan)'
	    else
		cat
	    fi >"$WORK/extra"
	if [ -s "$WORK/extra" ]; then
		echo "globals in libimsg.a outside the API and libimsg__:"
		cat "$WORK/extra"
		st=1
	fi
	return $st
}

# link_probe NAME KIND [FLAG]: link the probe written for NAME with
# -limsg; KIND is "shared" or "static" (libimsg.a), FLAG one more linker
# flag.
link_probe()
{
	if [ "$2" = static ]; then
		lib="-Wl,-Bstatic -limsg -Wl,-Bdynamic"
	else
		lib=-limsg
	fi
	# $SAN_FLAGS and $lib are word lists on purpose.
	$CC $SAN_FLAGS -o "$PROBES/$1-$2" "$PROBES/$1.c" \
	    -I"$D_INCLUDEDIR" -L"$D_LIBDIR" $lib ${3:+"$3"}
}

# musl has no <sys/queue.h>; <imsg.h> does not need one.
if printf '#include <sys/queue.h>\n' | $CC -E -x c - >/dev/null 2>&1; then
	QUEUE_H='#include <sys/queue.h>'
else
	QUEUE_H=
fi

# The probe as configure scripts write it: the headers in the order the
# man page asks for (without <sys/queue.h> where the system has none), and
# a use the compiler cannot optimise away.
write_header_probe()
{
	cat >"$PROBES/$1.c" <<EOF
#include <sys/types.h>
$QUEUE_H
#include <imsg.h>

int
main(void)
{
	void (*volatile p)(void) = (void (*)(void))$1;

	return p == 0;
}
EOF
}

# The probe as AC_CHECK_FUNC and AC_SEARCH_LIBS write it: no header, a
# made-up prototype.
write_bare_probe()
{
	cat >"$PROBES/$1.c" <<EOF
char $1(void);

int
main(void)
{
	return $1();
}
EOF
}

probe_links()
{
	write_header_probe "$1"
	link_probe "$1" shared || return 1
	link_probe "$1" static || return 1
	LD_LIBRARY_PATH=$D_LIBDIR "$PROBES/$1-shared" &&
	    "$PROBES/$1-static"
}

# Whether the linker took a definition of $1 from libimsg, shared or
# static, as its trace (-y) tells: prints the trace lines that say so,
# like "/x/libimsg.so: definition of f" or "/x/libimsg.a(m.o): ...".
defined_in_libimsg()
{
	write_bare_probe "$1"
	for kind in shared static; do
		link_probe "$1" "$kind" "-Wl,-y,$1" 2>&1 |
		    grep -E "/libimsg\.(so[.0-9]*|a\([^)]*\)): definition of $1\$"
	done
	return 0
}

# A positive control, so a linker that words its trace differently
# cannot make helper_not_in_libimsg pass by accident.
trace_finds_api()
{
	n=$(defined_in_libimsg imsgbuf_init | wc -l)
	[ "$n" -eq 2 ] || {
		echo "the linker trace did not show imsgbuf_init in libimsg.so"
		echo "and libimsg.a; it said:"
		link_probe imsgbuf_init shared -Wl,-y,imsgbuf_init
		return 1
	}
}

helper_not_in_libimsg()
{
	where=$(defined_in_libimsg "$1")
	if [ -n "$where" ]; then
		echo "libimsg defines $1:"
		echo "$where"
		return 1
	fi
}

old_name_absent()
{
	write_bare_probe "$1"
	for kind in shared static; do
		if link_probe "$1" "$kind"; then
			echo "$1 links ($kind)"
			return 1
		fi
	done
	return 0
}

# header_alone COMPILER LANG STD: <imsg.h> and nothing else before it,
# strict and with every warning an error.
header_alone()
{
	cat >"$PROBES/alone.c" <<'EOF'
#include <imsg.h>

/* Touch the public structs and a few prototypes of each family. */
size_t	probe_alone(struct imsgbuf *, struct imsg *);

size_t
probe_alone(struct imsgbuf *ib, struct imsg *imsg)
{
	struct ibuf	*b, view;
	size_t		 n = IMSG_HEADER_SIZE + MAX_IMSGSIZE + IBUF_READ_SIZE;

	if (imsgbuf_init(ib, -1) == -1 || imsgbuf_get(ib, imsg) != 1)
		return 0;
	if ((b = ibuf_open(n)) == NULL)
		return 0;
	ibuf_from_ibuf(&view, b);
	n += ibuf_size(&view) + imsg->hdr.len + (size_t)ib->fd;
	n += b->wpos + (b->entry.tqe_next != NULL);
	ibuf_free(b);
	ibufq_free(ibufq_new());
	msgbuf_free(msgbuf_new());
	return n;
}
EOF
	"$1" -x "$2" -std="$3" -pedantic-errors -Wall -Wextra -Werror \
	    -I"$D_INCLUDEDIR" -c -o "$PROBES/alone-$2.o" "$PROBES/alone.c"
}

# <sys/queue.h> before or after <imsg.h> must not clash.
header_with_queue()
{
	printf '#include <sys/queue.h>\n#include <imsg.h>\n%s\n' \
	    'struct imsg probe_a;' >"$PROBES/queue-first.c"
	printf '#include <imsg.h>\n#include <sys/queue.h>\n%s\n%s\n' \
	    'TAILQ_HEAD(probe_head, ibuf);' \
	    'struct probe_head probe_h = TAILQ_HEAD_INITIALIZER(probe_h);' \
	    >"$PROBES/queue-last.c"
	for f in queue-first queue-last; do
		$CC -std=c99 -pedantic-errors -Wall -Wextra -Werror \
		    -I"$D_INCLUDEDIR" -c -o "$PROBES/$f.o" "$PROBES/$f.c" ||
		    return 1
	done
}

find_cxx()
{
	for c in "${CXX:-}" g++ c++ clang++; do
		if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then
			echo "$c"
			return 0
		fi
	done
	return 1
}

api_names >"$WORK/api"
check "imsg.h declares $API_COUNT functions" api_count
check "libimsg.so has SONAME libimsg.so.$SOVERSION" soname
check "libimsg.so exports exactly the functions of imsg.h" shlib_exports
case $(uname -s) in
Linux|*BSD|DragonFly)
	check "every libimsg.so export has a version node of libimsg.map" \
	    symbol_versions
	check "objdump -T shows LIBIMSG_1.0 on its $NODE_1_0_COUNT functions" \
	    first_node_count
	;;
*)
	pass "symbol versions # SKIP no version script on $(uname -s)"
	;;
esac
check "libimsg.a has no global outside the API but libimsg__*" \
    archive_globals

for f in $PROBED; do
	check "link probe for $f (shared and static), in header order" \
	    probe_links "$f"
done

check "linker trace shows where imsgbuf_init comes from" trace_finds_api
for f in $HELPERS; do
	check "$f does not resolve from libimsg" helper_not_in_libimsg "$f"
done
for f in $OLD_API; do
	check "old API name $f does not link" old_name_absent "$f"
done

check "<imsg.h> alone compiles as C99 (-std=c99 -pedantic-errors)" \
    header_alone "$CC" c c99
if [ -n "$QUEUE_H" ]; then
	check "<imsg.h> and <sys/queue.h> in either order" header_with_queue
else
	pass "<imsg.h> and <sys/queue.h> in either order # SKIP no <sys/queue.h>"
fi
if CXX_CMD=$(find_cxx); then
	check "<imsg.h> alone compiles as C++ ($CXX_CMD -x c++)" \
	    header_alone "$CXX_CMD" c++ c++11
else
	fail "<imsg.h> as C++: no C++ compiler (install g++)"
fi

finish
