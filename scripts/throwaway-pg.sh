# Sourced by scripts/test.sh and scripts/bench.sh: start a throwaway PostgreSQL server (never
# as root: as the `postgres` user when run as root), stopped and removed on exit. Needs
# $pg_bin (the server binaries); sets $pg_dir, $pg_port, `as_pg` and `stop_pg`.
pg_dir=$(mktemp -d /tmp/mssp-pg.XXXXXX)
pg_port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$pg_dir"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi
stop_pg() { as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_dir"; }
trap stop_pg EXIT
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -w -l "$pg_dir/server.log" \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off -c max_connections=200" start >/dev/null
