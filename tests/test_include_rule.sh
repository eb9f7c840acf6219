#!/usr/bin/env bash
# test_include_rule.sh - the CLI (tools/), the server (server/), the Python extension module
# (python/) and the black-box tests (tests/) use the library through include/ragcore.h only: fails, naming file and line, when
# any of their C files includes a header of core/ (by a path into core/, or by the name of
# a core header that is not a file beside the includer). White-box tests (core/tests) and
# micro-benchmarks (bench/) reach core/ through the build's ragcore_internal target.
set -uo pipefail
src=${RAGCORE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$src" || exit 1

declare -A core_header=()
for h in core/*.h; do core_header[$(basename "$h")]=1; done
[ ${#core_header[@]} -gt 5 ] || { echo "FAIL no core headers found under $src/core"; exit 1; }

violations=0 checked=0
while IFS= read -r -d '' f; do
    checked=$((checked + 1))
    # "#include" lines: line number, quote or bracket, header path
    while IFS=: read -r line hdr; do
        name=${hdr#?}
        name=${name%?}
        bad=""
        case $name in
        core/* | */core/*) bad="a path into core/" ;;
        *)
            base=$(basename "$name")
            if [ -n "${core_header[$base]:-}" ] && [ ! -f "$(dirname "$f")/$name" ]; then
                bad="core/$base"
            fi
            ;;
        esac
        if [ -n "$bad" ]; then
            echo "FAIL $f:$line includes $hdr ($bad): use include/ragcore.h"
            violations=$((violations + 1))
        fi
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<][^">]+[">]' "$f" |
             sed -E 's/^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*(["<][^">]+[">]).*/\1:\2/')
done < <(find tools server tests python -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)

# The rule must see the files it guards: a rule that checks nothing passes vacuously.
[ $checked -gt 40 ] || { echo "FAIL only $checked files checked"; exit 1; }
if [ $violations -gt 0 ]; then
    echo "$violations include(s) of core headers outside core/"
    exit 1
fi
echo "ok   $checked files of tools/, server/ and tests/ include no core header"
