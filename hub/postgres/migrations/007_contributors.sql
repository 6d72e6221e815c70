-- Contributors' machines (hub/contrib): enrolment tokens, machines, their
-- uptime record and benchmarks. Tokens are kept as SHA-256 hashes only.

-- Agents authenticate with API tokens of role 'machine'.
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('operator', 'renter', 'contributor', 'machine'));

CREATE TABLE enrolments (
    token_hash bytea PRIMARY KEY,
    owner      text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    machine    uuid
);

CREATE TABLE machines (
    id             uuid PRIMARY KEY,
    owner          text NOT NULL,
    account        uuid NOT NULL,
    node_name      text NOT NULL UNIQUE,
    node_id        text NOT NULL DEFAULT '',
    region         text NOT NULL,
    floor_cpu      bigint NOT NULL CHECK (floor_cpu >= 0),
    host           jsonb NOT NULL,   -- agentapi.Machine
    offer          jsonb NOT NULL,   -- agentapi.Offer
    agent_version  text NOT NULL,
    join_benchmark jsonb NOT NULL,   -- agentapi.Benchmark
    last_benchmark jsonb,
    joined_at      timestamptz NOT NULL,
    last_heartbeat timestamptz,
    metrics        jsonb,            -- agentapi.Metrics, the latest
    rtt            jsonb,            -- region → ms, the latest
    available      boolean NOT NULL DEFAULT true,
    excluded       boolean NOT NULL DEFAULT false
);
CREATE INDEX machines_owner ON machines (owner);
CREATE INDEX machines_node_id ON machines (node_id);

-- Heartbeats counted per machine and hour: the uptime record.
CREATE TABLE machine_uptime (
    machine uuid NOT NULL REFERENCES machines (id),
    hour    timestamptz NOT NULL,
    beats   integer NOT NULL,
    PRIMARY KEY (machine, hour)
);

-- Every benchmark a machine ran: at join and each re-check.
CREATE TABLE machine_benchmarks (
    id        bigserial PRIMARY KEY,
    machine   uuid NOT NULL REFERENCES machines (id),
    benchmark jsonb NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);

-- What weighs on a machine's reputation beside what the hub measures:
-- disputes upheld against it and spot checks it failed.
CREATE TABLE machine_incidents (
    id       bigserial PRIMARY KEY,
    machine  uuid NOT NULL REFERENCES machines (id),
    kind     text NOT NULL CHECK (kind IN ('dispute', 'spot_check_failed')),
    detail   text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX machine_incidents_machine ON machine_incidents (machine);

-- The unit price each allocation pays for CPU: the quote's, or the
-- machine's floor where that is higher (hub/jobs matching). 0 = the quote's.
ALTER TABLE job_allocations ADD COLUMN cpu_price bigint NOT NULL DEFAULT 0;

---- create above / drop below ----

ALTER TABLE job_allocations DROP COLUMN cpu_price;
DROP TABLE machine_incidents;
DROP TABLE machine_benchmarks;
DROP TABLE machine_uptime;
DROP TABLE machines;
DROP TABLE enrolments;
DELETE FROM api_tokens WHERE role = 'machine';
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('operator', 'renter', 'contributor'));
