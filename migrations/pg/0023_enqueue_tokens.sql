-- PostgreSQL migration 0023: enqueue tokens (PostgreSQL only: a file
-- journal's commit cannot be cut off from its answer). A producer's
-- enqueue of jobs without idempotency keys is one transaction that first
-- records a random token of the client's here, then inserts the jobs and,
-- when the caller asked for them, the ids and created flags in the token's
-- row. When the answer to its COMMIT is lost (a restart, a cut network)
-- the library sends the same token again after reconnecting: a row with
-- it means the first transaction committed (its ids are read back), none
-- that it did not, and the jobs are sent again under the same token (the
-- primary key makes one of the two commit, never both). lib/pg/
-- enqueue_once.c. The token is the client's clock in 12 hex digits then
-- 20 random hex digits, in the "C" collation, so "older than a day" is a
-- range of the primary key: each enqueue deletes its connection's last
-- settled token and any older than a day.
CREATE TABLE sluice.enqueue_tokens (
  token text COLLATE "C" PRIMARY KEY,
  ids bigint[],
  created boolean[]
);
