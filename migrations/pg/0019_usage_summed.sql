-- PostgreSQL migration 0019: the table SQLite migration 0019 adds, so that
-- both journals keep one shape. The PostgreSQL library still counts usage
-- through the results_usage trigger (unchanged) and never writes it.
CREATE TABLE sluice.usage_summed (
  holder bigint PRIMARY KEY
);
