-- Renters' jobs as the hub bills them (hub/jobs). An admission is one
-- submission of a job spec: the quote, the renter's hold, and what has been
-- charged so far. Submitting the same job ID with another spec is a new
-- admission; running the same spec again after it ended is one too.
CREATE TABLE job_admissions (
    key         text PRIMARY KEY,            -- settlement IDs derive from it
    base        text NOT NULL,               -- hash of renter, job ID and spec
    renter      text NOT NULL,
    job_id      text NOT NULL,
    account     uuid NOT NULL,               -- the renter account paying
    quote       jsonb NOT NULL,              -- market.Quote: prices, resources, runtime, maximum
    hold        jsonb NOT NULL,              -- settle.Hold: the hold in force
    charged     bigint NOT NULL DEFAULT 0,   -- µSP taken from the renter (net of refunds)
    commission  bigint NOT NULL DEFAULT 0,   -- of which the hub's commission
    state       text NOT NULL DEFAULT 'admitted'
                CHECK (state IN ('admitted', 'running', 'settled', 'released', 'failed')),
    detail      text NOT NULL DEFAULT '',    -- why it was released or failed
    invoice     bigint REFERENCES invoices (number),
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);
CREATE INDEX job_admissions_base ON job_admissions (base);
CREATE INDEX job_admissions_open ON job_admissions (renter) WHERE state IN ('admitted', 'running');
CREATE INDEX job_admissions_renter ON job_admissions (renter, job_id, created_at);

-- Allocations of admitted jobs, as last seen in Nomad, and what each paid.
CREATE TABLE job_allocations (
    alloc_id      text PRIMARY KEY,
    admission     text NOT NULL REFERENCES job_admissions (key),
    node_id       text NOT NULL,
    contributor   uuid NOT NULL,             -- the account paid for it
    status        text NOT NULL,             -- Nomad's client status
    usage         jsonb NOT NULL,            -- meter.Allocation
    modify_index  bigint NOT NULL,           -- Nomad's index of that snapshot
    gross         bigint NOT NULL DEFAULT 0, -- µSP charged for it
    commission    bigint NOT NULL DEFAULT 0, -- of which commission
    refunded      boolean NOT NULL DEFAULT false
);
CREATE INDEX job_allocations_admission ON job_allocations (admission);

-- Settlements, written as intents before their transfers are submitted and
-- marked applied after: a hub that crashes in between resubmits the same
-- transfers (the ledger recognises them) instead of planning anew.
CREATE TABLE job_settlements (
    id          bigserial PRIMARY KEY,
    admission   text NOT NULL REFERENCES job_admissions (key),
    kind        text NOT NULL CHECK (kind IN ('tick', 'final', 'refund', 'release')),
    state       text NOT NULL CHECK (state IN ('planned', 'applied', 'failed')),
    plan        jsonb NOT NULL,              -- settle.Plan
    error       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_settlements_admission ON job_settlements (admission, id);
CREATE INDEX job_settlements_planned ON job_settlements (admission) WHERE state = 'planned';

-- Where the hub is in Nomad's event stream.
CREATE TABLE meter_cursor (
    id          int PRIMARY KEY CHECK (id = 1),
    event_index bigint NOT NULL
);

---- create above / drop below ----

DROP TABLE meter_cursor;
DROP TABLE job_settlements;
DROP TABLE job_allocations;
DROP TABLE job_admissions;
