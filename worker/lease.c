/*
 * lease.c: what this process holds and takes over. The heartbeat extends
 * the leases of held and in-flight jobs past half their time; the worker
 * records its identity and, before its first claim, takes over dead
 * predecessors on this host (their spill files ingested first, so that no
 * answer already received is sent again).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "log.h"
#include "sluice_batch.h"
#include "spill.h"

/* Jobs of list past half their lease into the arrays (at most room). */
static size_t due_leases(struct sl_worker *w, enum sl_wjob_phase ph,
                         int64_t now, struct sl_wjob **batch, int64_t *ids,
                         int64_t *tokens, size_t n, size_t room) {
  struct sl_list *l;
  for (l = w->phase_list[ph].next; l != &w->phase_list[ph] && n < room;
       l = l->next) {
    struct sl_wjob *wj = container_of(l, struct sl_wjob, node);
    if (wj->lease_lost || wj->job.lease_expires - now > w->cfg->lease_ms / 2)
      continue;
    batch[n] = wj;
    ids[n] = wj->job.id;
    tokens[n] = wj->job.lease_token;
    n++;
  }
  return n;
}

/* Extend the leases of jobs in flight or held back by storm control that
 * are past half their lease (at most 256 a tick; the rest on the next). */
void sl__heartbeat(struct sl_worker *w, int64_t now) {
  int64_t ids[256], tokens[256], expiry = 0;
  struct sl_wjob *batch[256];
  int rcs[256];
  size_t n, i;
  int rc;

  n = due_leases(w, SL_WJOB_IN_FLIGHT, now, batch, ids, tokens, 0, 256);
  n = due_leases(w, SL_WJOB_HELD, now, batch, ids, tokens, n, 256);
  if (n == 0)
    return;
  if (!w->extend_since_ms)
    w->extend_since_ms = now;
  rc = sl_lease_extend_many(w->j, ids, tokens, n, w->cfg->lease_ms, rcs,
                            &expiry);
  if (rc == SL_BUSY && now - w->extend_since_ms < w->cfg->lease_ms / 4) {
    /* Quietly again soon; a lease still has half its time left. */
    w->extend_busy = 1;
    uv_timer_start(&w->retry, sl__on_retry, SL_WORKER_BUSY_RETRY_MS, 0);
    return;
  }
  w->extend_since_ms = 0;
  if (sl__journal_rc(w, rc) == SL_DISCONNECTED)
    return; /* logged; the leases are extended after reconnecting, or
               lost (then their completions are refused by token) */
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "heartbeat failed: %s (%s)", sl_strerror(rc),
           sl_errmsg(w->j));
    return;
  }
  for (i = 0; i < n; i++) {
    if (rcs[i] == SL_OK) {
      batch[i]->job.lease_expires = expiry;
      continue;
    }
    batch[i]->lease_lost = 1; /* logged once; a held one is never sent */
    sl_log_job(SL_LOG_WARN, batch[i]->job.id, batch[i]->job.attempt,
               "lease lost while the request was in flight or held");
  }
}

/* A peer that stopped with outcomes in its spill file: ingest them before
 * rescue returns its jobs to pending (and they are sent again). */
int sl__spill_adopt(struct sl_worker *w) {
  struct sl_spill_stats st;
  int rc = sl_spill_ingest_dir(w->j, w->spill_dir, w->journal_id, &st);
  if (rc != SL_OK)
    return rc; /* logged; the files stay for the next pass */
  if (st.applied)
    w->want_claim = 1;
  return SL_OK;
}


/* Take back at once what dead predecessors on this host held. */

/* A dead sibling's spill file goes in first: the take-over rescues its
 * leases, and a rescued job would be sent again although its answer sits
 * in that file. */
int sl__take_over_gone(struct sl_worker *w) {
  int64_t jobs = 0, batches = 0;
  int rc = sl__spill_adopt(w);
  if (rc != SL_OK) {
    sl_log(SL_LOG_WARN, "taking over dead workers postponed until the "
                        "spill files in %s are ingested", w->spill_dir);
    return rc;
  }
  rc = sl__journal_rc(w, sl_identity_reap(w->j, &w->me, &jobs, &batches));
  if (rc != SL_OK && rc != SL_DISCONNECTED && rc != SL_BUSY)
    sl_log(SL_LOG_ERROR, "taking over dead workers failed: %s (%s)",
           sl_strerror(rc), sl_errmsg(w->j));
  else if (jobs)
    w->want_claim = 1;
  return rc;
}

/* Record who we are, then take over dead predecessors, before the first
 * claim (DESIGN.md "Worker identity"). A locked or full journal only
 * delays it: the tick tries again, and nothing is claimed meanwhile. */
void sl__identify(struct sl_worker *w) {
  int rc;
  if (!sl_worker_id(w->j)) {
    rc = sl_worker_register(w->j, &w->me.ident, NULL);
    if (rc != SL_OK) {
      if (!w->identify_failed++)
        sl_log(SL_LOG_WARN, "cannot record this worker yet: %s (%s); "
                            "retrying before claiming",
               sl_strerror(rc), sl_errmsg(w->j));
      return;
    }
    w->next_beat_ms = sl_now_ms() + w->cfg->lease_ms / 3;
  }
  if (sl__take_over_gone(w) == SL_OK) {
    w->identified = 1;
    w->want_claim = 1;
  }
}


/* Before the first claim: ingest what earlier workers spilled, then
 * reserve this worker's spill file while the disk has room. */
int sl__spill_start(struct sl_worker *w) {
  struct sl_spill_stats st;
  char err[600];
  const char *d = w->cfg->spill_dir, *jid = w->journal_id;
  int rc;

  rc = sl_batch_journal_id(w->j, w->journal_id, sizeof w->journal_id);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "spill: %s (%s)", sl_strerror(rc), sl_errmsg(w->j));
    return rc;
  }
  if (d && d[0])
    rc = (size_t)snprintf(w->spill_dir, sizeof w->spill_dir, "%s", d) <
                 sizeof w->spill_dir ? 0 : -1;
  else
    rc = sl_spill_default_dir(w->cfg->journal, jid, w->spill_dir,
                              sizeof w->spill_dir);
  if (rc != 0) {
    sl_log(SL_LOG_ERROR, "spill: directory path too long");
    return SL_INVAL;
  }
  d = w->spill_dir;
  rc = sl_spill_ingest_dir(w->j, d, jid, &st);
  if (rc != SL_OK) {
    sl_log(SL_LOG_ERROR, "not starting: the outcomes spilled in %s must "
                         "reach the journal before anything is claimed; "
                         "%s and start again",
           d, rc == SL_BUSY ? "let the other process finish ingesting them"
                            : "free space on the journal's disk");
    return rc;
  }
  if (st.busy)
    sl_log(SL_LOG_INFO, "%zu spill files in %s belong to live workers; "
                        "left to them", st.busy, d);
  if (sl_spill_open(&w->spill, d, jid, SL_SPILL_RESERVE, err, sizeof err))
    sl_log(SL_LOG_WARN, "no spill file: %s; if the journal's disk fills up, "
                        "outcomes it cannot take by shutdown are lost and "
                        "their jobs sent again", err);
  return SL_OK;
}

