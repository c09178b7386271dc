#!/bin/sh
# Run every example program and report which worked.
#
# Usage: run-examples.sh [DIR]
# DIR holds the built examples; by default the directory of this script,
# which is right for the copy CMake puts in build/examples/.
# Exits 0 only if every example exited 0.

EXAMPLES="privsep reqrep"
LIMIT=60	# seconds an example may run

dir=${1:-$(dirname "$0")}
if [ ! -x "$dir/privsep" ]; then
	echo "run-examples.sh: no built examples in $dir" >&2
	echo "build first (cmake -B build && cmake --build build), then run" \
	    "build/examples/run-examples.sh" >&2
	exit 2
fi

# Stop a hung example instead of hanging with it, where we can.
if command -v timeout >/dev/null 2>&1; then
	limit="timeout $LIMIT"
else
	limit=
fi

out=$(mktemp "${TMPDIR:-/tmp}/run-examples.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT

npass=0
nfail=0
for ex in $EXAMPLES; do
	echo "== $ex"
	# $limit is empty or a command and its argument.
	$limit "$dir/$ex" >"$out" 2>&1
	status=$?
	sed 's/^/   /' "$out"
	if [ "$status" -eq 0 ]; then
		echo "ok - $ex"
		npass=$((npass + 1))
	else
		echo "not ok - $ex (exit status $status)"
		nfail=$((nfail + 1))
	fi
done
echo "$npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
