/*
 * spill.c: the spill file's format: reserve, append, reset, read back.
 * See spill.h for why it exists and its layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sluice_secrets.h"
#include "spill.h"

#define REC_MAGIC 0x50534c53u        /* "SLSP" as little-endian bytes */
#define REC_HEAD 16                  /* magic, length, crc, zero */
#define MAX_FILE (1024u * 1024 * 1024) /* a larger file is not ours */
#define NO_STR 0xffffffffu

static const char file_magic[16] = "sluice-spill 1\n";
static unsigned opened; /* spill files this process created */

struct sl_spill {
  int fd;
  char *path;
  char *dir;
  uint64_t end;   /* next write offset */
  uint64_t dirty; /* end of bytes a failed write may have left */
  size_t count;
};

/* CRC-32 (IEEE), bitwise: records are few and small next to an fsync. */
static uint32_t crc32_of(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  int k;
  while (n--) {
    c ^= *p++;
    for (k = 0; k < 8; k++)
      c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
  }
  return ~c;
}

/* ------------------------------------------------------------ encode */

struct wbuf {
  unsigned char *p;
  size_t len, cap;
  int oom;
};

static unsigned char *wb_grow(struct wbuf *b, size_t n) {
  size_t cap = b->cap ? b->cap : 4096;
  unsigned char *g;
  if (b->oom)
    return NULL;
  if (b->len + n > b->cap) {
    while (cap < b->len + n)
      cap *= 2;
    g = realloc(b->p, cap);
    if (!g) {
      b->oom = 1;
      return NULL;
    }
    b->p = g;
    b->cap = cap;
  }
  b->len += n;
  return b->p + b->len - n;
}

static void le32(unsigned char *d, uint32_t v) {
  int i;
  for (i = 0; i < 4; i++)
    d[i] = (unsigned char)(v >> (8 * i));
}

static void put_u32(struct wbuf *b, uint32_t v) {
  unsigned char *d = wb_grow(b, 4);
  if (d)
    le32(d, v);
}

static void put_u64(struct wbuf *b, uint64_t v) {
  put_u32(b, (uint32_t)v);
  put_u32(b, (uint32_t)(v >> 32));
}

static void put_f64(struct wbuf *b, double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  put_u64(b, u);
}

/* A string with its NUL (so a reader can point into its buffer). */
static void put_str(struct wbuf *b, const char *s, size_t n) {
  unsigned char *d;
  if (!s) {
    put_u32(b, NO_STR);
    return;
  }
  put_u32(b, (uint32_t)(n + 1));
  d = wb_grow(b, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
}

/* A string the worker received (body, error, request id): a server may echo
 * the key, and the file is stored on disk like the journal, so registered
 * secrets are scrubbed here as sl__bind_text scrubs them there. */
static void put_text(struct wbuf *b, const char *s, size_t n) {
  size_t m = 0;
  int oom = 0;
  char *clean = s ? sl_secrets_scrub_dup(s, n, &m, &oom) : NULL;
  if (oom) {
    b->oom = 1;
    return;
  }
  put_str(b, clean ? clean : s, clean ? m : n);
  free(clean);
}

static int encode(struct wbuf *b, const struct sl_completion *c) {
  size_t head = b->len, body_len;
  unsigned char *h;
  if (!wb_grow(b, REC_HEAD))
    return -1;
  put_u64(b, (uint64_t)c->job_id);
  put_u64(b, (uint64_t)c->lease_token);
  put_u64(b, (uint64_t)c->run_after_ms);
  put_u64(b, (uint64_t)c->started_ms);
  put_u64(b, (uint64_t)c->input_tokens);
  put_u64(b, (uint64_t)c->output_tokens);
  put_u64(b, (uint64_t)c->total_tokens);
  put_u32(b, (uint32_t)c->outcome);
  put_u32(b, (uint32_t)c->http_status);
  put_u32(b, (uint32_t)c->record_attempt);
  put_f64(b, c->t.dns_ms);
  put_f64(b, c->t.connect_ms);
  put_f64(b, c->t.tls_ms);
  put_f64(b, c->t.first_byte_ms);
  put_f64(b, c->t.total_ms);
  put_str(b, c->route, c->route ? strlen(c->route) : 0);
  put_str(b, c->failure_class,
          c->failure_class ? strlen(c->failure_class) : 0);
  put_text(b, c->error, c->error ? strlen(c->error) : 0);
  put_text(b, c->request_id, c->request_id ? strlen(c->request_id) : 0);
  body_len = c->body ? (c->body_len ? c->body_len : strlen(c->body)) : 0;
  if (body_len >= NO_STR - 1) {
    errno = EFBIG;
    return -1;
  }
  put_text(b, c->body, body_len);
  if (b->oom) {
    errno = ENOMEM;
    return -1;
  }
  h = b->p + head;
  le32(h, REC_MAGIC);
  le32(h + 4, (uint32_t)(b->len - head - REC_HEAD));
  le32(h + 8, crc32_of(h + REC_HEAD, b->len - head - REC_HEAD));
  le32(h + 12, 0);
  return 0;
}

/* ------------------------------------------------------------- write */

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off) {
  const char *p = buf;
  ssize_t w;
  while (n > 0) {
    w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

static void sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

int sl_spill_default_dir(const char *journal, const char *journal_id,
                         char *buf, size_t len) {
  const char *base = getenv("STATE_DIRECTORY"), *sub = "";
  size_t k;
  int n;
  switch (sl_location_file(journal, buf, len)) {
  case 1: /* beside the journal's file */
    k = strlen(buf);
    n = snprintf(buf + k, len - k, "%s", SL_SPILL_SUFFIX);
    return n < 0 || (size_t)n >= len - k ? -1 : 0;
  case 0:
    break;
  default:
    return -1;
  }
  /* A journal on a server: this host's state directory, named by the
   * journal's id (never by the location, which may hold a password). */
  if (base && base[0]) {
    n = (int)strcspn(base, ":"); /* systemd lists several with ':' */
  } else if ((base = getenv("XDG_STATE_HOME")) && base[0] == '/') {
    n = (int)strlen(base);
    sub = "/sluice";
  } else if ((base = getenv("HOME")) && base[0] == '/' && strcmp(base, "/")) {
    n = (int)strlen(base);
    sub = "/.local/state/sluice";
  } else {
    base = "/var/lib/sluice";
    n = (int)strlen(base);
  }
  n = snprintf(buf, len, "%.*s%s/%s%s", n, base, sub, journal_id,
               SL_SPILL_SUFFIX);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* mkdir -p of dir's parents (0700 each, as the spill directory): the
 * default under ~/.local/state may not exist yet. */
static void make_parents(const char *dir) {
  char *p = strdup(dir), *s;
  if (!p)
    return;
  for (s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
      break;
    *s = '/';
  }
  free(p);
}

int sl_spill_open(struct sl_spill **out, const char *dir,
                  const char *journal_id, size_t reserve, char *err,
                  size_t errlen) {
  struct sl_spill *s = NULL;
  unsigned char head[SL_SPILL_HEADER] = {0};
  char *tmp = NULL;
  size_t n;
  int rc, fd = -1;

  *out = NULL;
  if (strlen(journal_id) >= SL_SPILL_HEADER - sizeof file_magic) {
    snprintf(err, errlen, "journal id too long");
    return -1;
  }
  make_parents(dir);
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return -1;
  }
  s = calloc(1, sizeof *s);
  n = strlen(dir) + strlen(journal_id) + 80;
  tmp = malloc(n);
  if (!s || !tmp || !(s->path = malloc(n)) || !(s->dir = strdup(dir))) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  /* The ingest lock (spill.h), made now while the disk has room. */
  snprintf(tmp, n, "%s/%s", dir, SL_SPILL_INGEST_LOCK);
  fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0)
    close(fd);
  fd = -1;
  /* pid, clock and a counter: unique on this host, never an old name */
  snprintf(s->path, n, "%s/%s-%ld-%lld-%u%s", dir, journal_id,
           (long)getpid(), (long long)sl_now_ms(), ++opened, SL_SPILL_SUFFIX);
  /* Built under a name no ingest looks at, renamed once locked and
   * reserved: nobody sees a half-made file. */
  snprintf(tmp, n, "%s.tmp", s->path);
  fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    goto fail;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    snprintf(err, errlen, "cannot lock %s: %s", tmp, strerror(errno));
    goto fail_unlink;
  }
  rc = posix_fallocate(fd, 0, (off_t)(reserve > SL_SPILL_HEADER
                                          ? reserve
                                          : SL_SPILL_HEADER));
  if (rc != 0) {
    snprintf(err, errlen, "cannot reserve %zu bytes in %s: %s", reserve, dir,
             strerror(rc));
    goto fail_unlink;
  }
  memcpy(head, file_magic, sizeof file_magic);
  memcpy(head + sizeof file_magic, journal_id, strlen(journal_id));
  if (pwrite_all(fd, head, sizeof head, 0) != 0 || fdatasync(fd) != 0 ||
      rename(tmp, s->path) != 0) {
    snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    goto fail_unlink;
  }
  sync_dir(dir);
  free(tmp);
  s->fd = fd;
  s->end = SL_SPILL_HEADER;
  *out = s;
  return 0;

fail_unlink:
  unlink(tmp);
fail:
  if (fd >= 0)
    close(fd);
  free(tmp);
  if (s) {
    free(s->path);
    free(s->dir);
    free(s);
  }
  return -1;
}

int sl_spill_write(struct sl_spill *s, const struct sl_completion *c,
                   size_t n) {
  struct wbuf b = {0};
  size_t i;
  int rc = -1, saved;
  if (!s) {
    errno = EBADF;
    return -1;
  }
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++)
    if (encode(&b, &c[i]) != 0)
      goto out;
  /* Bytes past the reservation may fail for lack of space: then the
   * write fails as a whole and end stays where it was. */
  if (pwrite_all(s->fd, b.p, b.len, s->end) != 0 || fdatasync(s->fd) != 0) {
    if (s->dirty < s->end + b.len) /* reset must clear those bytes too */
      s->dirty = s->end + b.len;
    goto out;
  }
  s->end += b.len;
  s->count += n;
  rc = 0;
out:
  saved = errno;
  free(b.p);
  errno = saved;
  return rc;
}

size_t sl_spill_count(const struct sl_spill *s) { return s ? s->count : 0; }

const char *sl_spill_path(const struct sl_spill *s) {
  return s ? s->path : "(none)";
}

int sl_spill_reset(struct sl_spill *s) {
  static const unsigned char zeros[65536];
  uint64_t off, n, stop;
  if (!s)
    return 0;
  stop = s->dirty > s->end ? s->dirty : s->end;
  if (stop == SL_SPILL_HEADER)
    return 0;
  /* The first record's magic first: from then on the file reads empty. */
  for (off = SL_SPILL_HEADER; off < stop; off += n) {
    n = stop - off < sizeof zeros ? stop - off : sizeof zeros;
    if (pwrite_all(s->fd, zeros, (size_t)n, off) != 0)
      return -1;
  }
  if (fdatasync(s->fd) != 0)
    return -1;
  s->end = s->dirty = SL_SPILL_HEADER;
  s->count = 0;
  return 0;
}

void sl_spill_close(struct sl_spill *s) {
  if (!s)
    return;
  if (s->count == 0) {
    unlink(s->path); /* still locked: no ingest is reading it */
    sync_dir(s->dir);
  } else {
    (void)fdatasync(s->fd);
  }
  close(s->fd);
  free(s->path);
  free(s->dir);
  free(s);
}

/* -------------------------------------------------------------- read */

struct rd {
  const unsigned char *p;
  size_t left;
  int bad;
};

static uint32_t get_u32(struct rd *r) {
  uint32_t v = 0;
  int i;
  if (r->left < 4) {
    r->bad = 1;
    return 0;
  }
  for (i = 0; i < 4; i++)
    v |= (uint32_t)r->p[i] << (8 * i);
  r->p += 4;
  r->left -= 4;
  return v;
}

static uint64_t get_u64(struct rd *r) {
  uint64_t lo = get_u32(r);
  return lo | (uint64_t)get_u32(r) << 32;
}

static double get_f64(struct rd *r) {
  uint64_t u = get_u64(r);
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

static const char *get_str(struct rd *r, size_t *len) {
  uint32_t n = get_u32(r);
  const char *s;
  if (r->bad || n == NO_STR)
    return NULL;
  if (n == 0 || n > r->left || r->p[n - 1] != '\0') {
    r->bad = 1;
    return NULL;
  }
  s = (const char *)r->p;
  r->p += n;
  r->left -= n;
  if (len)
    *len = n - 1;
  return s;
}

static int decode(const unsigned char *p, size_t n, struct sl_completion *c) {
  struct rd r = {p, n, 0};
  memset(c, 0, sizeof *c);
  c->job_id = (int64_t)get_u64(&r);
  c->lease_token = (int64_t)get_u64(&r);
  c->run_after_ms = (int64_t)get_u64(&r);
  c->started_ms = (int64_t)get_u64(&r);
  c->input_tokens = (int64_t)get_u64(&r);
  c->output_tokens = (int64_t)get_u64(&r);
  c->total_tokens = (int64_t)get_u64(&r);
  c->outcome = (enum sl_outcome)get_u32(&r);
  c->http_status = (int)get_u32(&r);
  c->record_attempt = (int)get_u32(&r);
  c->t.dns_ms = get_f64(&r);
  c->t.connect_ms = get_f64(&r);
  c->t.tls_ms = get_f64(&r);
  c->t.first_byte_ms = get_f64(&r);
  c->t.total_ms = get_f64(&r);
  c->route = get_str(&r, NULL);
  c->failure_class = get_str(&r, NULL);
  c->error = get_str(&r, NULL);
  c->request_id = get_str(&r, NULL);
  c->body = get_str(&r, &c->body_len);
  if (r.bad || r.left != 0 || c->outcome < SL_OUTCOME_SUCCESS ||
      c->outcome > SL_OUTCOME_RELEASE)
    return -1;
  return 0;
}

static uint32_t rd32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

void sl_spill_records_free(struct sl_spill_records *r) {
  free(r->c);
  free(r->buf);
  memset(r, 0, sizeof *r);
}

int sl_spill_read_fd(int fd, const char *path, struct sl_spill_records *r,
                     char *err, size_t errlen) {
  struct stat sb;
  size_t size, off, cap = 0, len;
  ssize_t got;
  struct sl_completion *grown;
  const unsigned char *b;

  memset(r, 0, sizeof *r);
  if (fstat(fd, &sb) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (sb.st_size < SL_SPILL_HEADER || (uint64_t)sb.st_size > MAX_FILE) {
    snprintf(err, errlen, "%s: not a spill file (size %lld)", path,
             (long long)sb.st_size);
    return -1;
  }
  size = (size_t)sb.st_size;
  r->buf = malloc(size);
  if (!r->buf) {
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
  }
  for (off = 0; off < size; off += (size_t)got) {
    got = pread(fd, r->buf + off, size - off, (off_t)off);
    if (got < 0 && errno == EINTR) {
      got = 0;
      continue;
    }
    if (got <= 0) {
      snprintf(err, errlen, "%s: %s", path,
               got < 0 ? strerror(errno) : "shorter than its size");
      goto fail;
    }
  }
  b = (const unsigned char *)r->buf;
  if (memcmp(b, file_magic, sizeof file_magic) != 0) {
    snprintf(err, errlen, "%s: not a spill file (bad header)", path);
    goto fail;
  }
  memcpy(r->journal_id, b + sizeof file_magic,
         SL_SPILL_HEADER - sizeof file_magic);
  r->journal_id[SL_SPILL_HEADER - sizeof file_magic] = '\0';
  for (off = SL_SPILL_HEADER; off + REC_HEAD <= size; off += REC_HEAD + len) {
    uint32_t magic = rd32(b + off);
    len = rd32(b + off + 4);
    if (magic == 0)
      break; /* the reserved, never written rest */
    if (r->n == cap) {
      cap = cap ? cap * 2 : 64;
      grown = realloc(r->c, cap * sizeof *r->c);
      if (!grown) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
      }
      r->c = grown;
    }
    if (magic != REC_MAGIC || len > size - off - REC_HEAD ||
        crc32_of(b + off + REC_HEAD, len) != rd32(b + off + 8) ||
        decode(b + off + REC_HEAD, len, &r->c[r->n]) != 0) {
      r->truncated = 1;
      break;
    }
    r->n++;
  }
  if (!r->truncated && off < size && off + REC_HEAD > size) {
    /* a few bytes past the last record that are not a whole header */
    size_t k;
    for (k = off; k < size && !b[k]; k++)
      ;
    r->truncated = k < size;
  }
  if (r->truncated)
    sl_log(SL_LOG_WARN, "spill file %s: the record at byte %zu is cut short "
                        "or corrupt (the worker stopped while writing it); "
                        "ignored, %zu whole records before it are read",
           path, off, r->n);
  return 0;

fail:
  sl_spill_records_free(r);
  return -1;
}
