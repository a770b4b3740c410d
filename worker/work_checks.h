/*
 * work_checks.h: what `sluice work` checks before it starts, so that a
 * mistake stops it at once with the reason (exit 2; 4 when the setting came
 * from the config file or environment) instead of surfacing as failed jobs.
 */
#ifndef SL_WORK_CHECKS_H
#define SL_WORK_CHECKS_H

#include <stddef.h>

/* An http:// or https:// URL with a host. 0, or -1 with why. */
int sl_work_check_url(const char *url, char *why, size_t whylen);

/*
 * Does the base URL need an API key? The rule (the same in --help, the
 * README and sluice(1)): yes when its host is api.openai.com or ends in
 * .openai.azure.com; other servers (vLLM, Ollama, a gateway, the mock) may
 * run without one.
 */
int sl_work_url_needs_key(const char *url);

/* Can a listener bind 127.0.0.1:port now? 0, or -1 with why. */
int sl_work_port_free(int port, char *why, size_t whylen);

/*
 * A --header line: "Name: value", a token for a name, no control
 * characters, and not one sluice sets itself (Authorization, api-key,
 * Content-Type, Content-Length, Idempotency-Key, Host). 0, or -1 with why.
 */
int sl_work_check_header(const char *h, char *why, size_t whylen);

#endif
