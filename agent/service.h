/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * agent/service: the daemon as a systemd service.
 *
 *  - READY=1 once the first sync has programmed the rules and the host's
 *    resolver is set up as far as it can be (resolv_settled); again at the
 *    end of a reload, once the API's objects have been listed again with
 *    the new configuration and synced (at most RELOAD_TIMEOUT later).
 *  - STATUS=: "312 services, 1,204 endpoints, last sync 14:02:11; DNS
 *    resolved -> 10.96.0.10", sent after syncs (at most once a second) and,
 *    only under systemd, refreshed every 30 s (for the DNS state, which
 *    changes without a sync); nothing else runs when nothing changes.
 *  - WATCHDOG=1 from the event loop itself (sd_event_set_watchdog): a stuck
 *    loop stops the keep-alives and systemd restarts the daemon.
 *  - Stop or restart: on SIGTERM the rules stay only when systemd has a
 *    restart of the unit queued (or --keep-rules); ExecStopPost= runs
 *    `kube-annex --cleanup=unless-restarting` for what a killed or crashed
 *    daemon could not do.
 *
 * All of it is a no-op without $NOTIFY_SOCKET, except the stop decision,
 * which falls back to "clean up" outside a service unit.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct agent;

int service_new(struct agent *a);
void service_free(struct agent *a);

/* A sync succeeded: STATUS (rate-limited), READY when it is due. */
void service_synced(struct agent *a);
/* A short note shown in STATUS until the first sync ("Connecting to ..."). */
void service_note(struct agent *a, const char *note);
/* A warning kept in STATUS until cleared (NULL), e.g. a failed reload. */
void service_warn(struct agent *a, const char *warning);

/* A reload has been read: RELOADING=1 now; READY=1 once the relist and the
 * sync are done. */
void service_reload_begin(struct agent *a);
/*
 * Tell the sender of a SIGHUP that the reload has started (ok: RELOADING=1
 * is sent; SIGUSR1) or failed (SIGUSR2), when the sender is
 * `kube-annex --reload` (it queues the signal with SERVICE_RELOAD_ASK) in
 * this service's own cgroup (ExecReload=). Anyone else's SIGHUP - a plain
 * `kill -HUP` from a shell, whose default action for SIGUSR1 is to die -
 * gets no answer.
 */
#define SERVICE_RELOAD_ASK 0x6b61 /* "ka" */
void service_reload_ack(pid_t sender, int code, int value, bool ok);
/* `kube-annex --reload PID`: SIGHUP to PID, then wait for its answer.
 * Returns the exit code (0 started, 1 failed or no answer). */
int service_reload_main(const char *pid);

/* SIGTERM: whether systemd is restarting this unit (the rules then stay for
 * the next instance). Logs what it decided. */
bool service_restart_queued(void);

/*
 * ExecStopPost= (--cleanup=unless-restarting): whether to clean up. No when
 * a restart of the unit is queued, or when the daemon failed and systemd
 * restarts it (the next instance adopts the rules: fail static); yes when
 * the unit is being stopped, the daemon exited by itself, or it failed with
 * a configuration error (exit status 2: RestartPreventExitStatus=). why
 * says which.
 */
bool service_stop_post_cleanup(char *why, size_t len);

/* "1,204" into buf (pure). */
const char *service_format_count(size_t n, char *buf, size_t len);
/* "07:46:19", local time (pure but for the time zone). */
const char *service_format_time(uint64_t realtime_usec, char *buf, size_t len);
