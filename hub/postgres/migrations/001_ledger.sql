-- The Spice ledger. Amounts are micro-Spice (bigint); IDs are 128-bit (uuid).
-- Rows are written only by the hub's single ledger writer, one transaction per
-- batch (group commit); balances here always equal the replay of transfers.

CREATE TABLE accounts (
    id              uuid PRIMARY KEY,
    owner           text NOT NULL,
    kind            smallint NOT NULL,
    flags           integer NOT NULL,
    code            integer NOT NULL,
    user_data       text NOT NULL,
    debits_pending  bigint NOT NULL,
    debits_posted   bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted  bigint NOT NULL,
    ts              bigint NOT NULL UNIQUE,
    log_index       bigint NOT NULL UNIQUE
) WITH (fillfactor = 50); -- room on each page so balance updates are HOT (no index writes)
CREATE INDEX accounts_owner ON accounts (owner);

CREATE TABLE transfers (
    id                uuid PRIMARY KEY,
    debit_account_id  uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount            bigint NOT NULL,
    pending_id        uuid,
    timeout           bigint NOT NULL,
    code              integer NOT NULL,
    user_data         text NOT NULL,
    flags             integer NOT NULL,
    ts                bigint NOT NULL,
    log_index         bigint NOT NULL UNIQUE -- a transfer is in the log exactly once
);

-- The transparency log. Its leaves are not stored twice: leaf i is the
-- canonical encoding (hub/ledger entry.go, version 1) of the account or
-- transfer row whose log_index is i, so entry bundles are re-encoded from
-- those rows, and any difference would break every client's hash check.
-- One row per committed batch holds the tlog stored hashes the batch added,
-- 32 bytes each, starting at first_hash_index
-- (golang.org/x/mod/sumdb/tlog.StoredHashIndex(0, first_index)).
CREATE TABLE log_batches (
    first_index      bigint PRIMARY KEY,
    count            integer NOT NULL CHECK (count > 0),
    first_hash_index bigint NOT NULL UNIQUE,
    hashes           bytea NOT NULL
);
-- Hashes are incompressible: skip TOAST compression.
ALTER TABLE log_batches ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- Signed checkpoints (c2sp.org/tlog-checkpoint as a c2sp.org/signed-note).
CREATE TABLE log_checkpoints (
    size       bigint PRIMARY KEY,
    root_hash  bytea NOT NULL,
    note       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API tokens, stored as SHA-256 of the secret.
CREATE TABLE api_tokens (
    token_hash bytea PRIMARY KEY,
    principal  text NOT NULL,
    role       text NOT NULL CHECK (role IN ('operator', 'renter', 'contributor')),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_tokens_principal ON api_tokens (principal);

---- create above / drop below ----

DROP TABLE api_tokens;
DROP TABLE log_checkpoints;
DROP TABLE log_batches;
DROP TABLE transfers;
DROP TABLE accounts;
