/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * airlockd's front door: connections accepted here, at most
 * ADMISSION_CONNECTIONS_PER_UID per client uid (more are closed at once),
 * and requests drawn from a token bucket per uid (by default
 * ADMISSION_RATE a second, bursts of twice the rate; airlockd's
 * --client-rate).  Root is not limited: it is the operator.
 */

#include <stdbool.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "error.h"

#define ADMISSION_CONNECTIONS_PER_UID 64
#define ADMISSION_RATE 500
#define ADMISSION_RATE_MAX 1000000
/* A connection's socket send buffer (see accept_loop in admission.c). */
#define ADMISSION_SEND_BUFFER (2 << 20)

struct admission;

/* rate: requests a second per non-root uid (bursts of twice as many). */
int admission_new(int listen_fd, unsigned rate, struct admission **out, struct al_error *err);
/* Accept on listen_fd and hand connections to mhd (started with
 * MHD_USE_NO_LISTEN_SOCKET and admission_notify). */
int admission_start(struct admission *a, struct MHD_Daemon *mhd, struct al_error *err);
/* Stop accepting (before mhd stops); free after it stopped. */
void admission_stop(struct admission *a);
void admission_free(struct admission *a);

/* For MHD_OPTION_NOTIFY_CONNECTION, with the admission as cls. */
void admission_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe);

/* Whether a request of uid may go on now (takes a token). */
bool admission_request(struct admission *a, uid_t uid);
