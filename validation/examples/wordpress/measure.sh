#!/usr/bin/env bash
# Latency of each request class at low load: N sequential requests per class
# (one at a time, curl's time_total, PAUSE s apart) through the balancer of a
# seeded stack, after 3 unmeasured ones; prints the median, min and max in ms.
# The pause keeps the load low: back to back, a 0.5-CPU app node spends its
# CFS quota and the requests after it wait for the next period (+50-100 %).
#
#   measure.sh [SEED_DIR] [N]
#
# SEED_DIR is what `stack.sh seed` wrote (build/examples/wordpress/single);
# N defaults to 20, PAUSE (environment) to 0.5; PORT as for stack.sh (18200).
# Each comment request posts a new comment (unique text) on a seeded post.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SEED_DIR=${1:-$HERE/../../../build/examples/wordpress/single}
N=${2:-20}
PAUSE=${PAUSE:-0.5}
URL="http://127.0.0.1:${PORT:-18200}"
COOKIE=$(cat "$SEED_DIR/cookie.txt")
mapfile -t IDS < "$SEED_DIR/post-ids.txt"
mapfile -t WORDS < <(cut -d' ' -f1 "$SEED_DIR/words.txt")

# one request of class $1, the i-th ($2); prints "status seconds"
request() {
    local i=$2 id=${IDS[$(( ($2 * 7) % ${#IDS[@]} ))]}
    local common=(-s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 30)
    case "$1" in
        front) curl "${common[@]}" "$URL/" ;;
        post) curl "${common[@]}" "$URL/?p=$id" ;;
        search) curl "${common[@]}" "$URL/?s=${WORDS[$(( i % ${#WORDS[@]} ))]}" ;;
        comment)
            curl "${common[@]}" --data-urlencode "comment_post_ID=$id" \
                --data-urlencode "author=Measure $i" --data-urlencode "email=measure$i@example.com" \
                --data-urlencode "comment=measure.sh comment $(date +%s%N) $i" \
                "$URL/wp-comments-post.php" ;;
        profile) curl "${common[@]}" -H "Cookie: $COOKIE" "$URL/wp-admin/profile.php" ;;
    esac
}

expected() { [ "$1" = comment ] && echo 302 || echo 200; }

printf '%-8s %5s %8s %8s %8s\n' class n median min max
for class in front post search comment profile; do
    for i in 1 2 3; do request "$class" "$((1000 + i))" > /dev/null; sleep "$PAUSE"; done
    times=()
    for i in $(seq 1 "$N"); do
        read -r status seconds < <(request "$class" "$i")
        if [ "$status" != "$(expected "$class")" ]; then
            echo "measure.sh: $class request $i answered $status" >&2
            exit 1
        fi
        times+=("$seconds")
        sleep "$PAUSE"
    done
    printf '%s\n' "${times[@]}" | sort -g | awk -v c="$class" '
        { t[NR] = $1 * 1000 }
        END {
            m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "%-8s %5d %8.1f %8.1f %8.1f\n", c, NR, m, t[1], t[NR]
        }'
done
