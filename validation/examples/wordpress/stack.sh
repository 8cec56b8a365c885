#!/usr/bin/env bash
# The WordPress example stack (README.md here): build, start, seed, stop.
#
#   stack.sh build                     build the three images
#   stack.sh up     [VARIANT]          start VARIANT, wait until the balancer serves
#   stack.sh seed   [VARIANT] [DIR]    install WordPress and the content (seed.sh);
#                                      DIR gets seed.json, cookie.txt, post-ids.txt,
#                                      words.txt (build/examples/wordpress/VARIANT)
#   stack.sh status [VARIANT]          the containers and whether the balancer serves
#   stack.sh down   [VARIANT]          stop and remove containers, network and data
#
# VARIANT: single (default), whatif or galera (single.yml, whatif.yml, galera.yml).
# Environment:
#   PORT        the balancer on 127.0.0.1:PORT                        (18200)
#   PROJECT     the compose project name                              (lbsim-wp-VARIANT)
#   BASE_IMAGE  the image every image is built from                   (lbsim/base:bookworm)
#   UP_TIMEOUT  seconds `up` waits for the stack to serve              (300)
#   SEED_TIMEOUT seconds `seed` may take                               (600)
#
# Every wait is bounded; on a failure the containers' state and log tails are
# printed and the exit status is 1 (the stack is left as it is: `down` removes it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VALIDATION=$(cd "$HERE/../.." && pwd)
REPO=$(cd "$VALIDATION/.." && pwd)
BASE_IMAGE=${BASE_IMAGE:-lbsim/base:bookworm}
PORT=${PORT:-18200}
UP_TIMEOUT=${UP_TIMEOUT:-300}
SEED_TIMEOUT=${SEED_TIMEOUT:-600}
export BASE_IMAGE PORT

APP_IMAGE=lbsim-example/wordpress-app:latest
LB_IMAGE=lbsim-example/wordpress-lb:latest
DB_IMAGE=lbsim-example/wordpress-db:latest

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
    exit 2
}

die() {
    echo "stack.sh: $*" >&2
    exit 1
}

if docker-compose version >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    die "neither docker-compose nor 'docker compose' works"
fi

ACTION=${1:-}
VARIANT=${2:-single}
case "$VARIANT" in
    single|whatif|galera) ;;
    *) die "unknown variant '$VARIANT' (single, whatif or galera)" ;;
esac
PROJECT=${PROJECT:-lbsim-wp-$VARIANT}
URL="http://127.0.0.1:$PORT"

compose() {
    "${COMPOSE[@]}" --project-name "$PROJECT" --file "$HERE/$VARIANT.yml" "$@"
}

# the containers' state and the last lines of each service's log
diagnose() {
    echo "--- containers of $PROJECT" >&2
    compose ps >&2 || true
    local service
    for service in $(compose config --services 2>/dev/null); do
        echo "--- last lines of $service" >&2
        compose logs --no-color --tail 25 "$service" >&2 || true
    done
}

# the balancer's answer to GET / ("000": none); before the seed WordPress
# redirects to its installer (302), after it serves the front page (200)
front_page_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL/" || true
}

build() {
    local start=$SECONDS
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 \
        || die "no base image $BASE_IMAGE (validation/stack/base/build-base.sh builds it)"
    docker build --build-arg BASE_IMAGE="$BASE_IMAGE" --target app -t "$APP_IMAGE" \
        -f "$HERE/Dockerfile" "$VALIDATION"
    docker build --build-arg BASE_IMAGE="$BASE_IMAGE" --target lb -t "$LB_IMAGE" \
        -f "$HERE/Dockerfile" "$VALIDATION"
    docker build --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$DB_IMAGE" \
        -f "$VALIDATION/stack/mariadb/Dockerfile" "$VALIDATION"
    echo "built $APP_IMAGE $LB_IMAGE $DB_IMAGE from $BASE_IMAGE in $((SECONDS - start)) s"
}

up() {
    local image
    for image in "$APP_IMAGE" "$LB_IMAGE" "$DB_IMAGE"; do
        docker image inspect "$image" >/dev/null 2>&1 || die "no image $image: run '$0 build' first"
    done
    local start=$SECONDS deadline=$((SECONDS + UP_TIMEOUT))
    # compose itself waits for the health checks (database, then app nodes)
    if ! timeout "$UP_TIMEOUT" "${COMPOSE[@]}" --project-name "$PROJECT" \
        --file "$HERE/$VARIANT.yml" up -d --no-build; then
        diagnose
        die "$VARIANT did not start within ${UP_TIMEOUT} s (project $PROJECT)"
    fi
    local status
    while true; do
        status=$(front_page_status)
        case "$status" in
            200|302) break ;;
        esac
        if [ "$SECONDS" -ge "$deadline" ]; then
            diagnose
            die "$VARIANT started but $URL/ answers '$status', not 200 or 302, after ${UP_TIMEOUT} s"
        fi
        sleep 1
    done
    echo "$VARIANT serves on $URL/ (project $PROJECT, $((SECONDS - start)) s)"
}

seed() {
    local out=${3:-$REPO/build/examples/wordpress/$VARIANT} app
    app=$(compose ps -q app1)
    [ -n "$app" ] || die "$VARIANT is not running (project $PROJECT): run '$0 up $VARIANT' first"
    if ! timeout "$SEED_TIMEOUT" "$HERE/seed.sh" "$app" "$out" "127.0.0.1:$PORT"; then
        diagnose
        die "seeding $VARIANT failed (or took over ${SEED_TIMEOUT} s)"
    fi
    local status
    status=$(front_page_status)
    [ "$status" = 200 ] || { diagnose; die "after the seed $URL/ answers '$status', not 200"; }
}

status() {
    compose ps
    echo "GET $URL/ -> $(front_page_status)"
}

down() {
    compose down --volumes --remove-orphans --timeout 10
}

case "$ACTION" in
    build) build ;;
    up) up ;;
    seed) seed "$@" ;;
    status) status ;;
    down) down ;;
    *) usage ;;
esac
