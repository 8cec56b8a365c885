#!/bin/sh
# Healthy when the server answers and, for a Galera node, it is Synced.
set -eu
if [ "${LBSIM_GALERA:-0}" = 1 ]; then
    state=$(mariadb -N -B -e "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'" | cut -f2)
    [ "$state" = Synced ]
else
    mariadb -N -B -e "SELECT 1" > /dev/null
fi
# the schema exists (bootstrap finished its init file, or the snapshot arrived)
mariadb -N -B -e "SELECT 1 FROM lbsim.probe LIMIT 1" > /dev/null
