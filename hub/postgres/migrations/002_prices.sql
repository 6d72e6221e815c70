-- The hub's unit prices (µSP per resource-hour), operator-settable. Every
-- change is a new row, so the table is also the price history; the newest
-- row is in force.
CREATE TABLE unit_prices (
    id              bigserial PRIMARY KEY,
    cpu_core_hour   bigint NOT NULL CHECK (cpu_core_hour >= 0),
    memory_gib_hour bigint NOT NULL CHECK (memory_gib_hour >= 0),
    disk_gib_hour   bigint NOT NULL CHECK (disk_gib_hour >= 0),
    set_by          text NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE unit_prices;
