# pg_schema.sh: the PostgreSQL migrations (migrations/pg/) yield the
# reference schema (schema/pg.sql), and that schema has the SQLite
# journal's shape: the same tables and views with the same columns, the
# same CHECK constraint names, the same triggers and the same indexes
# (schema/schema.sql).
#
# A throwaway cluster (tests/lib/pglib.sh): the migrations go into one
# database the way the runner applies them (one transaction per file under
# an advisory lock, recorded in sluice.schema_migrations), schema/pg.sql
# into another, and pg_dump --schema-only of both must be identical.
. "$(dirname "$0")/../lib/testlib.sh"
. "$SLUICE_ROOT/tests/lib/pglib.sh"

PG_OPTS="-c fsync=off" pg_start || { fail "a throwaway PostgreSQL cluster starts"; finish; }
pass "a throwaway PostgreSQL cluster starts (port $PGPORT)"

# The catalog of schema sluice, without pg_dump's comments and settings.
catalog() {
  "$PG_BIN/pg_dump" --schema-only --schema=sluice --no-owner \
    --no-privileges -d "$1" |
    grep -v -e '^--' -e '^SET ' -e '^SELECT pg_catalog.set_config' -e '^$' \
      -e '^\\restrict ' -e '^\\unrestrict '
}

pg_createdb mig >/dev/null
pg_createdb ref >/dev/null
check "the migrations apply to an empty database" pg_migrate mig
check "schema/pg.sql applies to an empty database" \
  pg_psql -d ref --single-transaction -f "$SLUICE_ROOT/schema/pg.sql" -o /dev/null

nfiles=$(ls "$SLUICE_ROOT"/migrations/pg/[0-9][0-9][0-9][0-9]_*.sql | wc -l)
eq "each migration is recorded once" "$nfiles" \
  "$(pg_psql -d mig -c 'SELECT count(DISTINCT version) FROM sluice.schema_migrations')"
check "migrating again is a no-op" pg_migrate mig
eq "migrating again records nothing more" "$nfiles" \
  "$(pg_psql -d mig -c 'SELECT count(*) FROM sluice.schema_migrations')"

catalog mig >"$T/mig.sql"
catalog ref >"$T/ref.sql"
check "the catalog is not empty (holds sluice.jobs)" \
  grep -q '^CREATE TABLE sluice.jobs ' "$T/mig.sql"
if diff -u "$T/ref.sql" "$T/mig.sql" >"$T/diff.txt"; then
  pass "the migrations yield schema/pg.sql (pg_dump --schema-only)"
else
  fail "the migrations yield schema/pg.sql (pg_dump --schema-only)"
  head -n 40 "$T/diff.txt"
fi

# The comparison sees a one-character drift in a CHECK.
pg_createdb drift >/dev/null
check "a drifted reference applies" sh -c "sed 's/CHECK (priority >= 0)/CHECK (priority >= 1)/' \
  '$SLUICE_ROOT/schema/pg.sql' | '$PG_BIN/psql' -X -q -v ON_ERROR_STOP=1 \
  -d drift --single-transaction -f - -o /dev/null"
catalog drift >"$T/drift.sql"
check "a reference with one CHECK changed is told apart" \
  sh -c "! cmp -s '$T/drift.sql' '$T/mig.sql'"

# The shape of the SQLite journal (schema/schema.sql on an in-memory db;
# table_xinfo lists the generated model column too).
lite_shape() {
  sqlite3 :memory: ".read $SLUICE_ROOT/schema/schema.sql" \
    "SELECT m.name || '.' || p.name FROM sqlite_schema m,
       pragma_table_xinfo(m.name) p
      WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%'
        AND p.hidden <> 1
      ORDER BY 1" | LC_ALL=C sort
}
# PostgreSQL's own tables: schema_migrations (SQLite has user_version) and
# enqueue_tokens (pg 0023: a lost COMMIT answer, which a file never has).
pg_shape() {
  pg_psql -d mig -c "SELECT table_name || '.' || column_name
      FROM information_schema.columns
     WHERE table_schema = 'sluice'
       AND table_name NOT IN ('schema_migrations', 'enqueue_tokens')" |
    LC_ALL=C sort
}
lite_shape >"$T/lite.cols"
pg_shape >"$T/pg.cols"
check "the SQLite shape is read (jobs.body)" grep -qx 'jobs.body' "$T/lite.cols"
missing=$(LC_ALL=C comm -23 "$T/lite.cols" "$T/pg.cols" | tr '\n' ' ')
extra=$(LC_ALL=C comm -13 "$T/lite.cols" "$T/pg.cols" | tr '\n' ' ')
eq "every SQLite table and view column exists in schema sluice" "" "$missing"
eq "schema sluice has no column SQLite lacks" "" "$extra"

# Every named CHECK of schema/schema.sql, by the same name.
grep -o 'CONSTRAINT "[^"]*"' "$SLUICE_ROOT/schema/schema.sql" |
  sed 's/^CONSTRAINT "\(.*\)"$/\1/' | LC_ALL=C sort -u >"$T/lite.checks"
pg_psql -d mig -c "SELECT conname FROM pg_constraint c JOIN pg_namespace n
    ON n.oid = c.connamespace WHERE n.nspname = 'sluice' AND contype = 'c'" |
  LC_ALL=C sort -u >"$T/pg.checks"
check "the SQLite constraint names are read" test -s "$T/lite.checks"
eq "every SQLite CHECK exists by name" "" \
  "$(LC_ALL=C comm -23 "$T/lite.checks" "$T/pg.checks" | tr '\n' ' ')"

# Every SQLite trigger, by the same name (PostgreSQL adds jobs_notify and
# the SQL door's), but jobs_delete_children: the cascade that a sqlite3 CLI
# session (foreign keys off) skips; PostgreSQL always enforces them.
sed -n 's/^CREATE TRIGGER \([a-z_]*\).*/\1/p' "$SLUICE_ROOT/schema/schema.sql" |
  grep -vx jobs_delete_children | LC_ALL=C sort -u >"$T/lite.triggers"
pg_psql -d mig -c "SELECT tgname FROM pg_trigger t JOIN pg_class c
    ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'sluice' AND NOT t.tgisinternal" |
  LC_ALL=C sort -u >"$T/pg.triggers"
check "the SQLite trigger names are read" test -s "$T/lite.triggers"
eq "every SQLite trigger exists by name" "" \
  "$(LC_ALL=C comm -23 "$T/lite.triggers" "$T/pg.triggers" | tr '\n' ' ')"
# Every SQLite index, by the same name, on the same leading columns
# (PostgreSQL may add id last: SQLite's index entries end with the rowid).
sqlite3 :memory: ".read $SLUICE_ROOT/schema/schema.sql" \
  "SELECT m.name || ' ' || (SELECT group_concat(name, ',') FROM
      (SELECT i.name FROM pragma_index_info(m.name) i ORDER BY i.seqno))
     FROM sqlite_schema m WHERE m.type = 'index' AND m.sql IS NOT NULL" |
  LC_ALL=C sort >"$T/lite.indexes"
pg_psql -d mig -c "SELECT c.relname || ' ' || string_agg(a.attname, ',' ORDER BY k.n)
    FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
    JOIN pg_namespace ns ON ns.oid = c.relnamespace
    CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, n)
    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
   WHERE ns.nspname = 'sluice' GROUP BY c.relname" |
  LC_ALL=C sort >"$T/pg.indexes"
check "the SQLite indexes are read (jobs_running)" \
  grep -qx 'jobs_running lease_expires' "$T/lite.indexes"
bad=""
while read -r name cols; do
  got=$(awk -v n="$name" '$1 == n { print $2 }' "$T/pg.indexes")
  [ "$got" = "$cols" ] || [ "$got" = "$cols,id" ] || bad="$bad $name($cols:${got:-missing})"
done <"$T/lite.indexes"
eq "every SQLite index exists by name on the same columns" "" "$bad"
check "the insert trigger notifies (jobs_notify)" grep -qx jobs_notify "$T/pg.triggers"

finish
