#!/bin/sh
# php-fpm in the foreground with FPM_MAX_CHILDREN workers (pm = static).
set -eu
export FPM_MAX_CHILDREN="${FPM_MAX_CHILDREN:-4}"
case "$FPM_MAX_CHILDREN" in
    ''|*[!0-9]*|0) echo "FPM_MAX_CHILDREN must be a whole number > 0, not '$FPM_MAX_CHILDREN'" >&2; exit 2 ;;
esac
exec php-fpm8.2 --nodaemonize --force-stderr --fpm-config /etc/php/8.2/fpm/php-fpm.conf "$@"
