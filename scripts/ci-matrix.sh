#!/bin/sh
# Build libimsg and run the whole ctest suite in each configuration CI
# cares about: gcc and clang, each plain, under ASan+UBSan, and under
# valgrind memcheck, all with -Werror, each in its own build directory.
#
# usage: scripts/ci-matrix.sh [-j jobs] [-o dir] [config ...]
#
# A config is COMPILER:MODE with MODE one of plain, asan, valgrind, for
# example "gcc:valgrind"; the default is gcc and clang in all three modes,
# and musl-gcc:plain.  Build directories go
# to dir/COMPILER-MODE (default build-ci/ in the source tree, which git
# ignores) and are reused, so a second run only rebuilds what changed.
#
# Prints one line per configuration, then "N passed, N failed" counting
# test programs across all configurations (a configuration that does not
# configure or build counts as one failure), and exits 1 on any failure.
# Logs are in dir/COMPILER-MODE.log.
#
# Under valgrind each test program runs as
#   valgrind --error-exitcode=1 --leak-check=full
#       --errors-for-leak-kinds=definite,indirect --track-fds=no
# through CMAKE_CROSSCOMPILING_EMULATOR, which ctest puts in front of
# every test whose command is a program built here; tests that run a
# script (the install and man page checks) run as they are.

set -u

src=$(cd "$(dirname "$0")/.." && pwd)
out=$src/build-ci
jobs=$(nproc 2>/dev/null || echo 2)

usage()
{
	echo "usage: $0 [-j jobs] [-o dir] [compiler:plain|asan|valgrind ...]" >&2
	exit 2
}

while getopts j:o: opt; do
	case $opt in
	j)	jobs=$OPTARG ;;
	o)	out=$OPTARG ;;
	*)	usage ;;
	esac
done
shift $((OPTIND - 1))
configs=${*:-gcc:plain gcc:asan gcc:valgrind clang:plain clang:asan clang:valgrind musl-gcc:plain}

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)

total_pass=0
total_fail=0
summary=

# note CONFIG RESULT: one line of the final table.
note()
{
	summary=$(printf '%s\n  %-16s %s' "$summary" "$1" "$2")
}

# run_config COMPILER MODE: configure, build and test; adds to the totals.
run_config()
{
	cc=$1
	mode=$2
	name=$cc-$mode
	dir=$out/$name
	log=$out/$name.log
	started=$(date +%s)

	case $mode in
	plain)
		set -- ;;
	asan)
		set -- -DLIBIMSG_SANITIZE=address,undefined ;;
	valgrind)
		# DWARF 4: valgrind 3.19 (Debian 12) cannot read clang 14's
		# default DWARF 5 and fails every program it runs.
		set -- -DLIBIMSG_SANITIZE= -DCMAKE_C_FLAGS=-gdwarf-4 \
		    "-DCMAKE_CROSSCOMPILING_EMULATOR=valgrind;--error-exitcode=1;--leak-check=full;--errors-for-leak-kinds=definite,indirect;--track-fds=no;-q" ;;
	*)
		echo "ci-matrix: unknown mode $mode (plain, asan, valgrind)" >&2
		exit 2 ;;
	esac

	printf '\n==> %s\n' "$name"
	if ! command -v "$cc" >/dev/null 2>&1 ||
	    { [ "$mode" = valgrind ] && ! command -v valgrind >/dev/null 2>&1; }
	then
		echo "ci-matrix: $cc or valgrind is not installed" \
		    "(sh scripts/setup.sh installs them)" | tee "$log"
		total_fail=$((total_fail + 1))
		note "$name" "FAILED: tools missing"
		return
	fi

	if ! cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLIBIMSG_WERROR=ON "$@" \
	    >"$log" 2>&1 ||
	    ! cmake --build "$dir" -j "$jobs" >>"$log" 2>&1; then
		tail -n 30 "$log"
		total_fail=$((total_fail + 1))
		note "$name" "FAILED to configure or build (see $log)"
		return
	fi

	# Sanitizer reports must fail the test that caused them.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    ctest --test-dir "$dir" -j "$jobs" --output-on-failure \
	    >>"$log" 2>&1
	sed -n '/^[0-9]*% tests passed/,$p' "$log"

	line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' \
	    "$log" | tail -n 1)
	if [ -z "$line" ]; then
		tail -n 30 "$log"
		total_fail=$((total_fail + 1))
		note "$name" "FAILED: ctest ran no tests (see $log)"
		return
	fi
	failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed.*/\1/')
	ran=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
	total_pass=$((total_pass + ran - failed))
	total_fail=$((total_fail + failed))
	secs=$(($(date +%s) - started))
	if [ "$failed" -eq 0 ]; then
		note "$name" "ok: $ran tests (${secs}s)"
	else
		note "$name" "FAILED: $failed of $ran tests (${secs}s, see $log)"
	fi
}

for c in $configs; do
	case $c in
	*:*)	run_config "${c%%:*}" "${c#*:}" ;;
	*)	usage ;;
	esac
done

printf '\n==> summary%s\n' "$summary"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
