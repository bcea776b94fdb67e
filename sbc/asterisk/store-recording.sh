#!/bin/sh
# store-recording FILE CALL_ID REGION: MixMonitor's post-command (extensions.conf). Stores the
# finished WAV in this region's records database, durably: bytes, duration (from the WAV header)
# and sha256, in the `recordings` table that replicates with the CDRs. Retries briefly; a failure
# is logged on the container's output and the WAV stays on disk (reconcile reports it).
set -u
exec 2>>/proc/1/fd/2 || true
log() { echo "store-recording: $*" >&2; }
file=${1:-} id=${2:-} region=${3:-}
[ -n "${DB_HOST:-}" ] || exit 0
case "$id" in ''|*[!A-Za-z0-9_.-]*) log "bad call id '$id'"; exit 1;; esac
case "$region" in ''|*[!A-Za-z0-9_.-]*) log "bad region '$region'"; exit 1;; esac
[ -f "$file" ] || { log "$id: no file $file"; exit 1; }
size=$(stat -c %s "$file")
[ "$size" -gt 44 ] || exit 0  # never bridged: MixMonitor's b leaves a bare header
# WAV header: byte rate at offset 28, data chunk size at 40 (little-endian u32).
rate=$(od -An -t u4 -j 28 -N 4 "$file" | tr -d ' ')
data=$(od -An -t u4 -j 40 -N 4 "$file" | tr -d ' ')
[ "${data:-0}" -gt 0 ] 2>/dev/null || data=$((size - 44))
[ "${rate:-0}" -gt 0 ] 2>/dev/null || rate=16000
dur=$(awk -v d="$data" -v r="$rate" 'BEGIN { printf "%.3f", d / r }')
sha=$(sha256sum "$file" | cut -d' ' -f1)
n=0
while :; do
  # The bytes go as hex on stdin: a recording is larger than one command-line argument may be.
  if { printf "INSERT INTO recordings (call_id, region, bytes, duration_s, sha256) VALUES ('%s', '%s', decode('" "$id" "$region"
       od -An -v -t x1 "$file" | tr -d ' \n'
       printf "', 'hex'), %s, '%s') ON CONFLICT (call_id) DO NOTHING;\n" "$dur" "$sha"
     } | PGPASSWORD="${DB_PASSWORD:-wobble}" PGCONNECT_TIMEOUT=3 psql -X -q -v ON_ERROR_STOP=1 \
           -h "$DB_HOST" -U wobble -d records >/dev/null 2>/tmp/store-recording.err; then
    exit 0
  fi
  n=$((n + 1))
  if [ "$n" -ge 5 ]; then
    log "$id: not stored after $n tries: $(tail -n 1 /tmp/store-recording.err)"
    exit 1
  fi
  sleep 1
done
