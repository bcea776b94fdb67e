#!/bin/sh
# rtpengine with no packaged config (it asks for the kernel table and interface "any").
set -eu
for v in CARRIER_IP REGION_IP; do
  eval "val=\${$v:-}"
  [ -n "$val" ] || { echo "media: environment variable $v is not set (see compose.yaml)" >&2; exit 2; }
done
exec rtpengine --config-file=none --table=-1 --foreground --log-stderr \
  --interface="carrier/$CARRIER_IP" --interface="region/$REGION_IP" \
  --listen-ng="$REGION_IP:2223" --port-min="${PORT_MIN:-40000}" --port-max="${PORT_MAX:-40999}" \
  --timeout="${MEDIA_TIMEOUT:-30}" --silent-timeout="${MEDIA_TIMEOUT:-30}" --log-level="${LOG_LEVEL:-5}" \
  --num-threads=2 --delete-delay=0 "$@"
