-- roles.sql: the database, its roles and their rights, run once by a
-- superuser (psql -v ON_ERROR_STOP=1 -f roles.sql). Set the passwords
-- afterwards with \password sluice and \password sluice_door, so they never
-- sit in a file or the shell's history.
--
-- sluice: the workers and the `sluice` commands. It owns the database, so
-- the first worker to connect creates the schema `sluice` and applies its
-- migrations (under an advisory lock: several hosts starting at once are
-- fine), and later versions migrate it the same way.
CREATE ROLE sluice LOGIN;
CREATE DATABASE jobs OWNER sluice;

-- sluice_door: a producer that speaks SQL (psql, an application's own
-- driver); its rights are granted by grants.sql once the schema exists.
CREATE ROLE sluice_door LOGIN;
