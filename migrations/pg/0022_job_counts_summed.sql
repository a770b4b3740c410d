-- PostgreSQL migration 0022 = SQLite 0022: the table only, so that both
-- journals keep one shape (as pg 0019's usage_summed). PostgreSQL's counts
-- are statement deltas (pg 0017): one row per key a statement changed,
-- already summed, so the library never writes it.
CREATE TABLE sluice.job_counts_summed (
  holder bigint PRIMARY KEY
);
