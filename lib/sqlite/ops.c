/*
 * ops.c: the SQLite backend's table of operations (backend.h). Each
 * sl__sqlite_<op> is the former public sl_<op>, in the file of its concern.
 */
#include "internal.h"

const struct sl_backend_ops sl__sqlite_ops = {
    .name = "sqlite",
    .open_journal = sl__sqlite_open,
    .close_journal = sl__sqlite_close,
    .errmsg = sl__sqlite_errmsg,
    .worker_id = sl__sqlite_worker_id,
    .set_errmsg = sl__sqlite_set_errmsg,
    .wait_counts = sl__sqlite_wait_counts,
#define X(op, params, args) .op = sl__sqlite_##op,
    SL_BACKEND_OPS(X)
#undef X
};
