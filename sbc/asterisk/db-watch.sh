#!/bin/bash
# pbx-db-watch HOST: reload cdr_pgsql and cel_pgsql each time the region's records database starts
# accepting connections again. Both read their table's columns when they load; loaded while the
# database is unreachable (the PBX started first, or the region's database was down or fenced),
# they write "INSERT INTO cdr () VALUES ()" for ever after, so every record would be lost.
host=$1
was=down
while sleep 2; do
  if pg_isready -q -h "$host" -p 5432 -t 2; then now=up; else now=down; fi
  if [ "$now" = up ] && [ "$was" = down ]; then
    if asterisk -rx "module reload cdr_pgsql.so" >/dev/null 2>&1 \
       && asterisk -rx "module reload cel_pgsql.so" >/dev/null 2>&1; then
      echo "pbx-db-watch: $host accepts connections: cdr_pgsql and cel_pgsql reloaded"
    else
      now=down  # Asterisk not up yet: try again
    fi
  fi
  was=$now
done
