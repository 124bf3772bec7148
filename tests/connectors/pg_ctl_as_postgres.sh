#!/bin/sh
# pg_ctl for pytest-postgresql when the tests run as root: PostgreSQL refuses to run as root, so
# run pg_ctl as the `postgres` user and hand it the folders pytest-postgresql created for it.
set -e
PG_CTL=$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PG_CTL" ]; then
    echo "PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/pg_ctl); run: make test (apt-get install postgresql)" >&2
    exit 127
fi
if [ "$(id -u)" != "0" ]; then
    exec "$PG_CTL" "$@"
fi
# Find the data dir (-D / --pgdata) and log file (-l): their parent must belong to postgres,
# and every folder above it must be traversable by it.
prev=""
for arg in "$@"; do
    case "$prev" in
        -D|--pgdata|-l)
            dir=$(dirname "$arg")
            mkdir -p "$dir"
            chown postgres "$dir"
            d="$dir"
            while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
            ;;
    esac
    prev="$arg"
done
cd /tmp
exec runuser -u postgres -- "$PG_CTL" "$@"
