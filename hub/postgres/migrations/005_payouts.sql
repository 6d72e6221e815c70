-- Contributor payouts (hub/payout). Amounts are µSP (bigint) and euro
-- cents (bigint); periods are calendar months as text, "2026-11".

-- Where and from how much each contributor is paid.
CREATE TABLE payout_profiles (
    owner      text PRIMARY KEY,
    legal_name text NOT NULL,
    iban       text NOT NULL,
    bic        text NOT NULL DEFAULT '',
    threshold  bigint NOT NULL CHECK (threshold > 0),
    updated_at timestamptz NOT NULL
);

-- One run per period, recorded with its payouts before any ledger transfer
-- is made and marked complete after the batch was handed to the rail: a
-- run found planned is completed with the same transfers.
CREATE TABLE payout_runs (
    batch        bigserial PRIMARY KEY,
    period       text NOT NULL UNIQUE CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    state        text NOT NULL CHECK (state IN ('planned', 'complete')),
    rate_cents   bigint NOT NULL CHECK (rate_cents > 0), -- euro cents per SP
    debtor       jsonb NOT NULL,                         -- payout.Party: the hub's bank account
    started_by   text NOT NULL,
    created_at   timestamptz NOT NULL,
    completed_at timestamptz,
    paid         integer NOT NULL DEFAULT 0,
    total_usp    bigint NOT NULL DEFAULT 0,
    total_cents  bigint NOT NULL DEFAULT 0,
    files        text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE payouts (
    batch        bigint NOT NULL REFERENCES payout_runs (batch),
    owner        text NOT NULL,
    legal_name   text NOT NULL,
    iban         text NOT NULL,
    bic          text NOT NULL DEFAULT '',
    available    bigint NOT NULL,
    amount       bigint NOT NULL CHECK (amount >= 0),     -- µSP paid
    cents        bigint NOT NULL CHECK (cents >= 0),      -- euro cents paid
    carried      bigint NOT NULL,                         -- µSP left on the accounts
    transfers    jsonb NOT NULL,                          -- []payout.Transfer: account, ledger transfer ID, µSP
    end_to_end_id text NOT NULL DEFAULT '',
    state        text NOT NULL CHECK (state IN ('planned', 'paid', 'failed', 'withheld')),
    detail       text NOT NULL DEFAULT '',
    PRIMARY KEY (batch, owner)
);
CREATE INDEX payouts_owner ON payouts (owner, batch);

-- Withheld payouts: in one period, or (period NULL) in every period until
-- released. Operators add them; the reputation system will too.
CREATE TABLE payout_withholds (
    id          bigserial PRIMARY KEY,
    owner       text NOT NULL,
    period      text CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    reason      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL,
    released_at timestamptz,
    released_by text NOT NULL DEFAULT ''
);
CREATE INDEX payout_withholds_active ON payout_withholds (owner) WHERE released_at IS NULL;

---- create above / drop below ----

DROP TABLE payout_withholds;
DROP TABLE payouts;
DROP TABLE payout_runs;
DROP TABLE payout_profiles;
