#!/bin/sh
# Renders the PBX configuration for one region from the environment, then runs the command
# (default: asterisk in the foreground). Re-rendered on every start, so a restarted container
# picks up changed variables.
#   REGION        region name, e.g. region-a                      (required)
#   SBC_IP        the region SBC's address(es) on the region network, e.g. 10.77.1.11
#                 (comma-separated list or CIDR allowed)          (required)
#   AGENT_PREFIX  agent endpoint prefix, e.g. a -> a-001 ..        (default: REGION after last '-')
#   AGENT_COUNT   number of agent endpoints                        (default 4)
#   RTP_START / RTP_END  RTP port range                            (default 20000 / 20999)
#   PBX_VERBOSE   Asterisk verbose level on the console            (default 1)
#   DB_HOST       the region's records database (db-a/db-b) address; empty: CSV CDRs only
#   DB_PASSWORD   its password for user wobble                     (default wobble)
set -eu

die() { echo "pbx-entrypoint: $*" >&2; exit 64; }

REGION="${REGION:-}"
SBC_IP="${SBC_IP:-}"
AGENT_PREFIX="${AGENT_PREFIX:-}"
[ -n "$AGENT_PREFIX" ] || AGENT_PREFIX="${REGION##*-}"
AGENT_COUNT="${AGENT_COUNT:-4}"
RTP_START="${RTP_START:-20000}"
RTP_END="${RTP_END:-20999}"
PBX_VERBOSE="${PBX_VERBOSE:-1}"
DB_HOST="${DB_HOST:-}"
DB_PASSWORD="${DB_PASSWORD:-wobble}"
export DB_HOST DB_PASSWORD PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-3}"

# Validate: the values are substituted into config files, so keep them to safe characters.
case "$REGION" in ''|*[!A-Za-z0-9_.-]*) die "REGION must be set to [A-Za-z0-9_.-]+ (got '$REGION')";; esac
case "$SBC_IP" in ''|*[!0-9A-Za-z.:/,-]*) die "SBC_IP must be set to an address, list or CIDR (got '$SBC_IP')";; esac
case "$AGENT_PREFIX" in ''|*[!A-Za-z0-9_.-]*) die "AGENT_PREFIX must be [A-Za-z0-9_.-]+ (got '$AGENT_PREFIX')";; esac
case "$DB_HOST" in *[!0-9A-Za-z.:-]*) die "DB_HOST must be an address or host name (got '$DB_HOST')";; esac
case "$DB_PASSWORD" in ''|*[!A-Za-z0-9_.-]*) die "DB_PASSWORD must be [A-Za-z0-9_.-]+";; esac
for v in AGENT_COUNT RTP_START RTP_END PBX_VERBOSE; do
  eval "val=\$$v"
  case "$val" in ''|*[!0-9]*) die "$v must be a non-negative integer (got '$val')";; esac
done
[ "$AGENT_COUNT" -ge 1 ] && [ "$AGENT_COUNT" -le 999 ] || die "AGENT_COUNT must be 1..999"
[ "$RTP_START" -ge 1024 ] && [ "$RTP_END" -le 65535 ] && [ "$RTP_START" -lt "$RTP_END" ] \
  || die "need 1024 <= RTP_START < RTP_END <= 65535 (got $RTP_START-$RTP_END)"

# A stable, locally administered EID per region (Asterisk cannot read a MAC in a container).
h=$(printf '%s' "$REGION" | cksum | cut -d' ' -f1)
ENTITYID=$(printf '02:77:%02x:%02x:%02x:%02x' $((h >> 24 & 255)) $((h >> 16 & 255)) $((h >> 8 & 255)) $((h & 255)))

src=/usr/share/wobble-pbx/conf
dst=/etc/asterisk
mkdir -p "$dst"
rm -f "$dst"/*.conf
for f in "$src"/*.conf; do
  sed -e "s|@REGION@|$REGION|g" \
      -e "s|@SBC_IP@|$SBC_IP|g" \
      -e "s|@AGENT_PREFIX@|$AGENT_PREFIX|g" \
      -e "s|@RTP_START@|$RTP_START|g" \
      -e "s|@RTP_END@|$RTP_END|g" \
      -e "s|@PBX_VERBOSE@|$PBX_VERBOSE|g" \
      -e "s|@ENTITYID@|$ENTITYID|g" \
      -e "s|@DB_HOST@|$DB_HOST|g" \
      -e "s|@DB_PASSWORD@|$DB_PASSWORD|g" \
      "$f" > "$dst/$(basename "$f")"
done

# The records database backends only where there is a database (calls work without one).
if [ -n "$DB_HOST" ]; then
  printf '\n; records database (DB_HOST=%s)\nload = cdr_pgsql.so\nload = cel_pgsql.so\n' "$DB_HOST" >> "$dst/modules.conf"
else
  rm -f "$dst/cdr_pgsql.conf" "$dst/cel_pgsql.conf"
fi

# Agent endpoints and queue members.
agents="$dst/pjsip_agents.conf"
members="$dst/queues_members.conf"
: > "$agents"
: > "$members"
# REHOME_PREFIXES: other regions' agents, who register here when their home region is down.
for prefix in $AGENT_PREFIX ${REHOME_PREFIXES:-}; do
case "$prefix" in *[!A-Za-z0-9_.-]*) die "REHOME_PREFIXES must be [A-Za-z0-9_.-]+ words (got '$prefix')";; esac
i=1
while [ "$i" -le "$AGENT_COUNT" ]; do
  name=$(printf '%s-%03d' "$prefix" "$i")
  cat >> "$agents" <<AGENT
[$name]
type = endpoint
transport = transport-udp
context = from-agent
identify_by = username
aors = $name
disallow = all
allow = ulaw,alaw
direct_media = no
rtp_symmetric = yes
force_rport = yes
; the Contact is the agent's own address; INVITEs reach it via the registered Path (the SBC)
rewrite_contact = no
allow_subscribe = no

[$name]
type = aor
max_contacts = 1
remove_existing = yes
support_path = yes
minimum_expiration = 10
default_expiration = 60
maximum_expiration = 3600
qualify_frequency = 0

AGENT
  echo "member => PJSIP/$name,0,$name,PJSIP/$name" >> "$members"
  i=$((i + 1))
done
done

mkdir -p /var/run/asterisk /var/lib/asterisk /var/spool/asterisk/monitor /var/log/asterisk/cdr-csv
echo "pbx-entrypoint: $REGION sbc=$SBC_IP agents=$AGENT_PREFIX-001..$(printf '%s-%03d' "$AGENT_PREFIX" "$AGENT_COUNT") rehome=${REHOME_PREFIXES:-none} rtp=$RTP_START-$RTP_END db=${DB_HOST:-none}"

# The PBX does not wait for its database (calls work without one), so the pgsql backends are
# reloaded whenever the database comes (back) up: see db-watch.sh.
[ -z "$DB_HOST" ] || /usr/local/bin/pbx-db-watch "$DB_HOST" &

exec "$@"
