#!/bin/bash
# pbx-db-watch HOST: load cdr_pgsql and cel_pgsql afresh each time the region's records database starts
# accepting connections again. Both read their table's columns when they load; loaded while the
# database is unreachable (the PBX started first, or the region's database was down or fenced),
# they write "INSERT INTO cdr () VALUES ()" for ever after, so every record would be lost. A
# `module reload` keeps the empty column list: only unload + load reads it again.
host=$1
was=down
fresh() {  # unload (if loaded), then load; true only if Asterisk says it is loaded
  asterisk -rx "module unload $1" >/dev/null 2>&1
  asterisk -rx "module load $1" 2>/dev/null | grep -q "^Loaded"
}
while sleep 2; do
  if pg_isready -q -h "$host" -p 5432 -t 2; then now=up; else now=down; fi
  if [ "$now" = up ] && [ "$was" = down ]; then
    if fresh cdr_pgsql.so && fresh cel_pgsql.so; then
      echo "pbx-db-watch: $host accepts connections: cdr_pgsql and cel_pgsql loaded afresh"
    else
      now=down  # Asterisk not up yet: try again
    fi
  fi
  was=$now
done
