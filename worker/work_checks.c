/* work_checks.c: startup checks of `sluice work` (work_checks.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "work_checks.h"

/* The host of an http(s) URL: *host and *len, or -1. */
static int url_host(const char *url, const char **host, size_t *len) {
  const char *p, *end;
  if (strncasecmp(url, "https://", 8) == 0)
    p = url + 8;
  else if (strncasecmp(url, "http://", 7) == 0)
    p = url + 7;
  else
    return -1;
  end = p + strcspn(p, "/?#");
  if (memchr(p, '@', (size_t)(end - p))) /* user:pass@ is not a host */
    p = (const char *)memchr(p, '@', (size_t)(end - p)) + 1;
  *host = p;
  if (*p == '[') { /* [::1]:8000 */
    const char *close = memchr(p, ']', (size_t)(end - p));
    *len = close ? (size_t)(close - p + 1) : 0;
  } else {
    *len = strcspn(p, ":/?#");
  }
  return *len ? 0 : -1;
}

int sl_work_check_url(const char *url, char *why, size_t whylen) {
  const char *host;
  size_t len;
  if (!url || (strncasecmp(url, "http://", 7) != 0 &&
               strncasecmp(url, "https://", 8) != 0)) {
    snprintf(why, whylen, "--base-url '%.200s' is not an http:// or "
                          "https:// URL", url ? url : "");
    return -1;
  }
  if (url_host(url, &host, &len) != 0) {
    snprintf(why, whylen, "--base-url '%.200s' has no host", url);
    return -1;
  }
  for (const char *c = url; *c; c++)
    if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
      snprintf(why, whylen, "--base-url holds a space or control "
                            "character");
      return -1;
    }
  return 0;
}

int sl_work_url_needs_key(const char *url) {
  static const char azure[] = ".openai.azure.com";
  const char *host;
  size_t len;
  if (!url || url_host(url, &host, &len) != 0)
    return 1; /* unknown: assume the real API */
  if (len == 14 && strncasecmp(host, "api.openai.com", 14) == 0)
    return 1;
  return len > sizeof azure - 1 &&
         strncasecmp(host + len - (sizeof azure - 1), azure,
                     sizeof azure - 1) == 0;
}

int sl_work_port_free(int port, char *why, size_t whylen) {
  struct sockaddr_in a;
  int fd, one = 1, rc;
  if (port <= 0)
    return 0; /* 0: the kernel picks a free one */
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0; /* cannot tell; the metrics server reports it later */
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* as the metrics server binds: SO_REUSEADDR, so TIME_WAIT is no clash */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  if (rc != 0)
    snprintf(why, whylen, "--metrics-port %d: cannot listen on "
                          "127.0.0.1:%d: %s", port, port, strerror(errno));
  close(fd);
  return rc == 0 ? 0 : -1;
}

int sl_work_check_header(const char *h, char *why, size_t whylen) {
  static const char *const reserved[] = {"authorization", "api-key",
                                         "content-type", "content-length",
                                         "idempotency-key", "host"};
  const char *colon = h ? strchr(h, ':') : NULL;
  size_t n, i;
  if (!colon || colon == h) {
    snprintf(why, whylen, "--header wants 'Name: value', got '%.100s'",
             h ? h : "");
    return -1;
  }
  n = (size_t)(colon - h);
  for (i = 0; i < n; i++)
    if (!strchr("!#$%&'*+-.^_`|~", h[i]) &&
        !((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
          (h[i] >= '0' && h[i] <= '9'))) {
      snprintf(why, whylen, "--header name '%.*s' is not a valid header "
                            "name", (int)(n > 64 ? 64 : n), h);
      return -1;
    }
  for (const char *c = colon + 1; *c; c++)
    if ((unsigned char)*c < 0x20 && *c != '\t') {
      snprintf(why, whylen, "--header %.*s: the value holds a control "
                            "character", (int)(n > 64 ? 64 : n), h);
      return -1;
    }
  for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strlen(reserved[i]) == n && strncasecmp(h, reserved[i], n) == 0) {
      snprintf(why, whylen, "--header %.*s is set by sluice itself (the "
                            "key: OPENAI_API_KEY or --api-key-file, with "
                            "--auth-header)", (int)n, h);
      return -1;
    }
  return 0;
}
