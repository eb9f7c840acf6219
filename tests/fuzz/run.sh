#!/usr/bin/env bash
# run.sh - builds the fuzz targets into OUTDIR and runs each for SECONDS (libFuzzer), after
# replaying its seed corpus and committed regression inputs. Without clang's libFuzzer it
# only replays those inputs through ASan/UBSan builds (cc). Exits 1 when any target fails.
#   run.sh OUTDIR SECONDS [TARGET...]
# RAGCORE_FUZZ_SEED fixes libFuzzer's random seed (the CI smoke test sets it, so that a run
# there repeats what a run here did); unset, each run mutates differently.
set -uo pipefail
out=${1:?usage: run.sh OUTDIR SECONDS [TARGET...]}
secs=${2:-10}
shift 2 || true
here=$(cd "$(dirname "$0")" && pwd)
# targets, seed corpora and regression inputs live in both directories
dirs=("$(cd "$here/../../core/tests/fuzz" && pwd)" "$here")
mode=libfuzzer
if ! command -v clang >/dev/null ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
     clang -x c - -fsanitize=fuzzer -o "${TMPDIR:-/tmp}/ragfuzz-probe.$$" 2>/dev/null; then
    mode=replay
    echo "run.sh: clang with libFuzzer not found (tools/setup.sh --fuzz installs it):" \
         "replaying seeds and regressions only"
fi
rm -f "${TMPDIR:-/tmp}/ragfuzz-probe.$$"
bash "$here/build.sh" "$out" "$mode" || exit 1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for d in "${dirs[@]}"; do
        for t in "$d"/fuzz_*.c; do targets+=("$(basename "$t" .c)"); done
    done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
    if [ ! -x "$out/$t" ]; then
        echo "skip $t (not built: see build.sh's message above)"
        continue
    fi
    inputs=()
    seeds=""
    for base in "${dirs[@]}"; do
        [ -d "$base/corpus/$t" ] && seeds="$base/corpus/$t"
        for d in "$base/corpus/$t" "$base/regressions/$t"; do
            [ -d "$d" ] && for f in "$d"/*; do [ -f "$f" ] && inputs+=("$f"); done
        done
    done
    log="$out/$t.log"
    export RAGFUZZ_REPORT="$out/$t.report" # what a failed assertion said (stderr may be closed)
    rm -f "$RAGFUZZ_REPORT"
    if [ "$mode" = replay ]; then
        "$out/$t" "${inputs[@]}" >"$log" 2>&1
    else
        mkdir -p "$out/crashes/$t"
        # The server targets' stderr is libmicrohttpd's warnings: dropped (reports stay).
        quiet=()
        case $t in fuzz_http*) quiet=(-close_fd_mask=2) ;; esac
        "$out/$t" -runs=0 "${inputs[@]}" >"$log" 2>&1 &&
        (
            work=$(mktemp -d "$out/work-$t.XXXXXX")
            [ -n "$seeds" ] && cp "$seeds"/* "$work"/ 2>/dev/null
            seed=()
            [ -n "${RAGCORE_FUZZ_SEED:-}" ] && seed=(-seed="$RAGCORE_FUZZ_SEED")
            "$out/$t" "${quiet[@]}" "${seed[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
                -artifact_prefix="$out/crashes/$t/" -print_final_stats=1 "$work" >>"$log" 2>&1
            rc=$?
            rm -rf "$work"
            exit $rc
        )
    fi
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
    if [ $rc -ne 0 ]; then
        failed+=("$t")
        echo "FAIL $t (exit $rc; log $log)"
        grep -m3 -E 'ERROR|runtime error|SUMMARY' "$log" | sed 's/^/    /'
        [ -s "$RAGFUZZ_REPORT" ] && head -c 2000 "$RAGFUZZ_REPORT" | sed 's/^/    /'
        # the input that failed: escaped, then base64 (to commit it as a regression)
        grep -m1 -B1 'Test unit written to' "$log" | head -1 | head -c 2000 | sed 's/^/    /'
        grep -m1 '^Base64:' "$log" | head -c 4000 | sed 's/^/    /'
    else
        echo "ok   $t ($mode, ${#inputs[@]} committed inputs, $runs fuzz runs)"
    fi
done
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
