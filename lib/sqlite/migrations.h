/* migrations.h: the schema steps compiled in from migrations/ (generated). */
#ifndef SL_MIGRATIONS_H
#define SL_MIGRATIONS_H

struct sl_migration {
  int version;      /* NNNN of the file name; versions run 1, 2, 3... */
  const char *name; /* file name without .sql */
  const char *sql;
};

extern const struct sl_migration sl_migrations[];
extern const int sl_migrations_count;

#endif
