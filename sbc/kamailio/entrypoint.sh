#!/bin/sh
# Render the region's kamailio.cfg from the environment, then run Kamailio in the foreground.
set -eu
for v in REGION CARRIER_IP REGION_IP PBX_IP MEDIA_NG; do
  eval "val=\${$v:-}"
  [ -n "$val" ] || { echo "sbc: environment variable $v is not set (see compose.yaml)" >&2; exit 2; }
done
mkdir -p /run/kamailio
sed -e "s|@REGION@|$REGION|g" -e "s|@CARRIER_IP@|$CARRIER_IP|g" -e "s|@REGION_IP@|$REGION_IP|g" \
    -e "s|@PBX_IP@|$PBX_IP|g" -e "s|@MEDIA_NG@|$MEDIA_NG|g" \
    /etc/kamailio/kamailio.cfg.in > /run/kamailio/kamailio.cfg
echo "1 sip:$PBX_IP:5060" > /run/kamailio/dispatcher.list
kamailio -c -f /run/kamailio/kamailio.cfg >/dev/null 2>&1 || kamailio -c -f /run/kamailio/kamailio.cfg
exec kamailio -DD -E -f /run/kamailio/kamailio.cfg -Y /run/kamailio "$@"
