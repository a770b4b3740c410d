-- Mark the file as a sluice journal in its header (0x534c5549, "SLUI"), so
-- that sluice can refuse to add its tables to someone else's SQLite file and
-- `file journal.db` names it. Journals made before this step are recognised
-- by their tables (lib/journal.c).
PRAGMA application_id = 1397511497;
