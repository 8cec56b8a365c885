#!/bin/sh
# Start the load agent (for HAProxy agent-check, policy least_load) when
# LBSIM_AGENT_PORT is set, then php-fpm in the foreground.
set -eu
if [ -n "${LBSIM_AGENT_PORT:-}" ]; then
    php /srv/app/agent.php &
fi
exec php-fpm8.2 --nodaemonize --force-stderr --fpm-config /etc/php/8.2/fpm/php-fpm.conf "$@"
