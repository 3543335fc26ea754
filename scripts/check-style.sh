#!/usr/bin/env bash
# scripts/check-style.sh — what the formatter cannot see (like curl's
# checksrc), plus clang-format and cppcheck.  Exit 1 on any finding.
#
#   --fix    reformat with clang-format instead of only checking
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

fix=0
[ "${1:-}" = "--fix" ] && fix=1
status=0
problem() { echo "check-style: $*"; status=1; }

mapfile -t c_files < <(git ls-files -co --exclude-standard \
    'connector/*.c' 'connector/*.h' 'connector/*.cc' \
    'mapping/*.c' 'mapping/*.h' 'tests/*.c' 'tests/*.h' | sort -u |
    while read -r f; do [ -f "$f" ] && echo "$f"; done)

# 1. clang-format
if command -v clang-format >/dev/null 2>&1; then
    for f in "${c_files[@]}"; do
        if [ $fix = 1 ]; then
            clang-format -i "$f"
        elif ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            problem "$f: not clang-formatted (scripts/check-style.sh --fix)"
        fi
    done
else
    problem "clang-format not installed (scripts/setup installs it)"
fi

# 2. banned calls: unbounded or unsafe libc functions.
banned='\b(strcpy|sprintf|vsprintf|strtok|atoi|atol|gets|strcat)[[:space:]]*\('
for f in "${c_files[@]}"; do
    grep -nE "$banned" "$f" | grep -vE '^[0-9]+:[[:space:]]*(/?\*|//)' |
        while IFS= read -r line; do
            echo "check-style: $f:$line: banned call"
        done | grep . && status=1
done

# 3. seams: the only callers of sqlite3_step and curl_easy_perform.
calls() { grep -nE "$1[[:space:]]*\\(" "$2" | grep -vE '^[0-9]+:[[:space:]]*(/?\*|//)'; }
for f in "${c_files[@]}"; do
    case "$f" in *.c) ;; *) continue ;; esac
    case "$f" in connector/cache/cache.c|tests/*) ;; *)
        calls sqlite3_step "$f" >/dev/null &&
            problem "$f: calls sqlite3_step directly; use cache_step (the fault seam)" ;;
    esac
    case "$f" in connector/remote/http.c|tests/*) ;; *)
        calls curl_easy_perform "$f" >/dev/null &&
            problem "$f: calls curl_easy_perform directly; go through http.c" ;;
    esac
done

# 4. every module opens with a comment saying what it is.
for f in "${c_files[@]}"; do
    case "$f" in connector/*|mapping/*|tests/fuzz/*|tests/unit/*) ;;
    *) continue ;; esac
    head -c 2 "$f" | grep -q '/\*' || problem "$f: no file header comment"
done

# 5. cppcheck (warnings and portability; style is clang-format's job).
if command -v cppcheck >/dev/null 2>&1; then
    out=$(cppcheck --quiet --error-exitcode=1 --std=c11 \
        --enable=warning,portability --inline-suppr \
        --suppress=missingIncludeSystem --suppress=ctuuninitvar \
        -I connector -I mapping \
        connector mapping 2>&1) || { echo "$out"; problem "cppcheck found issues"; }
fi

[ $status = 0 ] && echo "check-style: ${#c_files[@]} files clean"
exit $status
