-- Live pricing (hub/market): unit prices per region, moved by the market's
-- utilization controller or set by an operator. unit_prices stays the
-- history: every change is a row, the newest row of a region is in force.
--
-- region     '' is the whole hub (every existing row); otherwise a
--            contributor region (node meta spiceroute_region)
-- by_market  the controller set the row (set_by 'market'); an operator's
--            row is the region's base price, which the controller moves from
-- util_*_bp  utilization (demand / capacity) in basis points, and the
-- demand_*,  demand and capacity (MHz, MB) that moved a market price; NULL
-- capacity_* on an operator's row
ALTER TABLE unit_prices
    ADD COLUMN region             text NOT NULL DEFAULT '',
    ADD COLUMN by_market          boolean NOT NULL DEFAULT false,
    ADD COLUMN util_cpu_bp        bigint CHECK (util_cpu_bp >= 0),
    ADD COLUMN util_memory_bp     bigint CHECK (util_memory_bp >= 0),
    ADD COLUMN util_disk_bp       bigint CHECK (util_disk_bp >= 0),
    ADD COLUMN demand_cpu_mhz     bigint CHECK (demand_cpu_mhz >= 0),
    ADD COLUMN demand_memory_mb   bigint CHECK (demand_memory_mb >= 0),
    ADD COLUMN demand_disk_mb     bigint CHECK (demand_disk_mb >= 0),
    ADD COLUMN capacity_cpu_mhz   bigint CHECK (capacity_cpu_mhz >= 0),
    ADD COLUMN capacity_memory_mb bigint CHECK (capacity_memory_mb >= 0),
    ADD COLUMN capacity_disk_mb   bigint CHECK (capacity_disk_mb >= 0),
    ADD CONSTRAINT unit_prices_market_load CHECK (by_market = (util_cpu_bp IS NOT NULL));
CREATE INDEX unit_prices_region ON unit_prices (region, id);
CREATE INDEX unit_prices_region_base ON unit_prices (region, id) WHERE NOT by_market;

---- create above / drop below ----

DROP INDEX unit_prices_region_base;
DROP INDEX unit_prices_region;
ALTER TABLE unit_prices
    DROP CONSTRAINT unit_prices_market_load,
    DROP COLUMN capacity_disk_mb,
    DROP COLUMN capacity_memory_mb,
    DROP COLUMN capacity_cpu_mhz,
    DROP COLUMN demand_disk_mb,
    DROP COLUMN demand_memory_mb,
    DROP COLUMN demand_cpu_mhz,
    DROP COLUMN util_disk_bp,
    DROP COLUMN util_memory_bp,
    DROP COLUMN util_cpu_bp,
    DROP COLUMN by_market,
    DROP COLUMN region;
