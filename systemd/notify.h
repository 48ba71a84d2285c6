/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * systemd/: the sd_notify contract, and what systemd is doing with the
 * daemon's unit. Every notify call is a no-op when the process is not run
 * by systemd (no $NOTIFY_SOCKET), so the daemon works unchanged in the
 * foreground.
 *
 *   READY=1       after the first complete sync (rules and DNS applied),
 *                 and at the end of a reload
 *   RELOADING=1   at the start of a reload (with MONOTONIC_USEC=, which
 *                 Type=notify-reload in systemd >= 253 requires)
 *   STATUS=...    what the daemon is doing, for systemctl status
 *   STOPPING=1    on SIGTERM/SIGINT
 *   WATCHDOG=1    sent by sd-event itself (sd_event_set_watchdog)
 */

#include "lib/util.h"

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) _printf_(1, 2);
/* Whether a service manager listens ($NOTIFY_SOCKET is set). */
bool notify_enabled(void);

/*
 * The job systemd has queued for this process's unit: ret_unit is the unit
 * ("kube-annex.service"), *ret_job the job type ("stop", "restart",
 * "start", ...) or NULL when there is none. A restart job keeps its type
 * until the stop half of it has finished (ExecStopPost= included), so both
 * the daemon on SIGTERM and ExecStopPost= can tell a restart from a stop.
 * Asks PID 1 on its private socket (root), else on the system bus, with a
 * 2 s timeout. -ENODATA when the process is not in a service unit or was
 * not started by systemd (its parent is not PID 1); other -errno when
 * systemd cannot be asked.
 */
int notify_unit_job(char **ret_unit, char **ret_job);
