-- The call-records schema of one region (database `records`, owner `wobble`).
-- cdr and cel are the layouts Asterisk's cdr_pgsql and cel_pgsql expect (they insert the
-- columns they find); recordings holds each answered call's MixMonitor WAV, durably.
CREATE TABLE cdr (
  calldate    timestamptz NOT NULL DEFAULT now(),
  clid        varchar(80) NOT NULL DEFAULT '',
  src         varchar(80) NOT NULL DEFAULT '',
  dst         varchar(80) NOT NULL DEFAULT '',
  dcontext    varchar(80) NOT NULL DEFAULT '',
  channel     varchar(80) NOT NULL DEFAULT '',
  dstchannel  varchar(80) NOT NULL DEFAULT '',
  lastapp     varchar(80) NOT NULL DEFAULT '',
  lastdata    varchar(80) NOT NULL DEFAULT '',
  duration    bigint NOT NULL DEFAULT 0,
  billsec     bigint NOT NULL DEFAULT 0,
  disposition varchar(45) NOT NULL DEFAULT '',
  amaflags    bigint NOT NULL DEFAULT 0,
  accountcode varchar(20) NOT NULL DEFAULT '',
  uniqueid    varchar(150) NOT NULL DEFAULT '',
  userfield   varchar(255) NOT NULL DEFAULT '',
  peeraccount varchar(20) NOT NULL DEFAULT '',
  linkedid    varchar(150) NOT NULL DEFAULT '',
  sequence    integer NOT NULL DEFAULT 0,
  -- not Asterisk's: when the row was committed here (the RPO clock)
  inserted_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX cdr_userfield ON cdr (userfield);
CREATE INDEX cdr_calldate ON cdr (calldate);

CREATE TABLE cel (
  id          bigserial PRIMARY KEY,
  eventtype   varchar(30) NOT NULL,
  eventtime   timestamptz NOT NULL,
  cid_name    varchar(80) NOT NULL DEFAULT '',
  cid_num     varchar(80) NOT NULL DEFAULT '',
  cid_ani     varchar(80) NOT NULL DEFAULT '',
  cid_rdnis   varchar(80) NOT NULL DEFAULT '',
  cid_dnid    varchar(80) NOT NULL DEFAULT '',
  exten       varchar(80) NOT NULL DEFAULT '',
  context     varchar(80) NOT NULL DEFAULT '',
  channame    varchar(80) NOT NULL DEFAULT '',
  appname     varchar(80) NOT NULL DEFAULT '',
  appdata     varchar(512) NOT NULL DEFAULT '',
  amaflags    integer NOT NULL DEFAULT 0,
  accountcode varchar(20) NOT NULL DEFAULT '',
  peeraccount varchar(20) NOT NULL DEFAULT '',
  uniqueid    varchar(150) NOT NULL DEFAULT '',
  linkedid    varchar(150) NOT NULL DEFAULT '',
  userfield   varchar(255) NOT NULL DEFAULT '',
  peer        varchar(80) NOT NULL DEFAULT '',
  userdeftype varchar(255) NOT NULL DEFAULT '',
  extra       varchar(512) NOT NULL DEFAULT ''
);
CREATE INDEX cel_linkedid ON cel (linkedid);

CREATE TABLE recordings (
  call_id    text PRIMARY KEY,
  region     text NOT NULL,
  bytes      bytea NOT NULL,
  duration_s double precision NOT NULL,
  sha256     text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Stored as is, not pglz-compressed: the lab's agents and callers play pure tones, which compress
-- several-fold, while real speech recordings hardly do; compressed, the WAL (and so the
-- replication lag a WAN makes) would be a fraction of a real contact center's.
ALTER TABLE recordings ALTER COLUMN bytes SET STORAGE EXTERNAL;

-- One row: which region this database belongs to and when it was created (reconcile's default
-- --since: calls of an earlier lab run, whose records went with its volumes, do not count).
CREATE TABLE lab_meta (
  region     text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO wobble;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO wobble;
