#!/usr/bin/env bash
# Seed the WordPress example through one of its app containers.
#
#   seed.sh CONTAINER OUTDIR [HOST]
#
# Runs seed.php in CONTAINER (an lbsim-example/wordpress-app container of a
# running stack) as www-data: installs WordPress unless it is, then the
# content (idempotent: a second run adds nothing), and copies what it wrote
# into OUTDIR: seed.json (post ids, search words and their hit counts, users,
# passwords), cookie.txt (a Cookie: header value logging in the subscriber
# reader01), post-ids.txt and words.txt (word and posts found, a line each).
# HOST is the balancer's address as clients send it (localhost); it only goes
# into the posts' GUIDs. `stack.sh seed` calls this with the stack's app1.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 2 ] || { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 2; }
CONTAINER=$1
OUT=$2
HOST=${3:-localhost}
INSIDE=/tmp/lbsim-wp-seed

run_php() {
    docker exec -i -u www-data -e SEED_HOST="$HOST" -e SEED_OUT="$INSIDE" "$CONTAINER" \
        php -- "$1" < "$HERE/seed.php"
}

start=$SECONDS
run_php install
run_php content
mkdir -p "$OUT"
docker cp "$CONTAINER:$INSIDE/." "$OUT/"
echo "seeded in $((SECONDS - start)) s; files in $OUT"
