-- The release distribution as a TUF repository (issue 13). Metadata and target files live here,
-- not under the data dir, so every API replica serves the same signed state, the worker's
-- timestamp re-signing is seen by all of them at once, and a publish (targets + snapshot +
-- timestamp + the releases index + the audit entry) commits or fails as one transaction.

-- Every version of every role is kept: consistent snapshots serve <version>.<role>.json, and a
-- client that updates root walks each root version in turn. Only the newest timestamp is served.
CREATE TABLE tuf_metadata (
  role        text NOT NULL CHECK (role IN ('root', 'targets', 'snapshot', 'timestamp')),
  version     integer NOT NULL CHECK (version >= 1),
  body        text NOT NULL CHECK (octet_length(body) <= 16777216),
  expires_at  timestamptz NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (role, version)
);

-- Target files by content: served at /v1/dist/targets/<sha256>.<name>.
CREATE TABLE tuf_targets (
  sha256      text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$'),
  length      integer NOT NULL CHECK (length >= 0 AND length <= 268435456),
  body        bytea NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (sha256, name),
  CHECK (octet_length(body) = length)
);

-- The releases table becomes the index of the repository's agent targets: written only in the
-- transaction that signs new targets metadata; a yanked version leaves the targets.
ALTER TABLE releases
  ADD COLUMN yanked_at timestamptz,
  ADD COLUMN tarball_target text CHECK (tarball_target IS NULL OR length(tarball_target) <= 128),
  ADD COLUMN manifest_target text CHECK (manifest_target IS NULL OR length(manifest_target) <= 128);

GRANT SELECT, INSERT, DELETE ON tuf_metadata TO agentina_app;
GRANT SELECT, INSERT ON tuf_targets TO agentina_app;
GRANT UPDATE (yanked_at) ON releases TO agentina_app;
