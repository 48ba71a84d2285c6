/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon as a systemd service: READY, STATUS, the watchdog, reload
 * bookkeeping and the stop-or-restart decision. See service.h.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <systemd/sd-event.h>
#include <systemd/sd-login.h>

#include "agent/agent.h"
#include "agent/service.h"
#include "lib/log.h"
#include "systemd/notify.h"

#define STATUS_MIN_INTERVAL_USEC (1 * USEC_PER_SEC)
#define STATUS_REFRESH_USEC (30 * USEC_PER_SEC)
/* A reload waits this long for the API server to be listed again. */
#define RELOAD_TIMEOUT_USEC (15 * USEC_PER_SEC)

struct service {
	sd_event_source *refresh;      /* STATUS every 30 s, under systemd only */
	sd_event_source *status_later; /* a STATUS held back by the rate limit */
	sd_event_source *waiting;      /* post source while READY=1 is due */
	sd_event_source *reload_timeout;
	uint64_t last_status_usec;
	bool notified_ready;
	bool reloading;
	char note[160];
	char warning[256];
};

/* ---- formatting (pure) -------------------------------------------------- */

const char *service_format_count(size_t n, char *buf, size_t len)
{
	char digits[32];
	size_t nd = (size_t)snprintf(digits, sizeof(digits), "%zu", n), o = 0;

	for (size_t i = 0; i < nd && o + 1 < len; i++) {
		if (i && (nd - i) % 3 == 0 && o + 2 < len)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	if (len)
		buf[o < len ? o : len - 1] = 0;
	return buf;
}

const char *service_format_time(uint64_t realtime_usec, char *buf, size_t len)
{
	time_t t = (time_t)(realtime_usec / USEC_PER_SEC);
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, len, "%H:%M:%S", &tm) == 0)
		snprintf(buf, len, "?");
	return buf;
}

/* ---- STATUS ------------------------------------------------------------- */

static size_t append(char *buf, size_t len, size_t at, const char *fmt, ...) _printf_(4, 5);
static size_t append(char *buf, size_t len, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= len)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, len - at, fmt, ap);
	va_end(ap);
	return n < 0 ? at : at + (size_t)n;
}

static size_t dns_text(struct agent *a, char *buf, size_t len, size_t at)
{
	struct resolv_status rs;
	char addr[INET6_ADDRSTRLEN];

	resolv_get_status(a->resolv, &rs);
	if (rs.mode == RESOLV_MODE_OFF)
		return append(buf, len, at, "; DNS off");
	at = append(buf, len, at, "; DNS %s", resolv_mode_to_string(rs.mode));
	if (rs.n_servers == 0 && !rs.fixed)
		return append(buf, len, at, " (no %s/%s Service with a ClusterIP)",
			      rs.service_ns, rs.service_name);
	if (!rs.configured)
		return append(buf, len, at, " (not set up yet)");
	return append(buf, len, at, " -> %s%s",
		      kube_ip_format(&rs.servers[0], addr, sizeof(addr)),
		      rs.n_servers > 1 ? ",..." : "");
}

static void status_text(struct agent *a, char *buf, size_t len)
{
	struct service *s = a->service;
	char services[32], endpoints[32], when[32];
	struct model_stats ms;
	size_t at = 0;

	if (!a->ready) {
		at = append(buf, len, at, "%s", s->note[0] ? s->note : "Starting");
	} else {
		model_get_stats(a->model, &ms);
		/* A time of day stays true without updates; "N s ago" would not. */
		at = append(buf, len, at, "%s services, %s endpoints, last sync %s",
			    service_format_count(ms.services_proxied, services, sizeof(services)),
			    service_format_count(ms.endpoints, endpoints, sizeof(endpoints)),
			    service_format_time(now_usec(CLOCK_REALTIME) -
						(now_usec(CLOCK_MONOTONIC) - a->last_sync_usec),
						when, sizeof(when)));
		if (a->retry_usec)
			at = append(buf, len, at, "; programming failed, retrying");
		at = dns_text(a, buf, len, at);
	}
	if (s->warning[0])
		at = append(buf, len, at, "; %s", s->warning);
	if (a->bad_objects)
		at = append(buf, len, at, "; %u objects skipped", a->bad_objects);
	if (a->restorations)
		(void)append(buf, len, at, "; tables restored %" PRIu64 "x", a->restorations);
}

static void status_send(struct agent *a)
{
	char text[480];

	if (!notify_enabled())
		return;
	status_text(a, text, sizeof(text));
	notify_status("%s", text);
	a->service->last_status_usec = now_usec(CLOCK_MONOTONIC);
	a->service->status_later = sd_event_source_disable_unref(a->service->status_later);
}

static int on_status_later(sd_event_source *src, uint64_t usec, void *userdata)
{
	status_send(userdata);
	return 0;
}

/* At most one STATUS a second: PID 1 turns each into a D-Bus signal. */
static void status_update(struct agent *a)
{
	struct service *s = a->service;
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	if (!notify_enabled())
		return;
	if (now >= s->last_status_usec + STATUS_MIN_INTERVAL_USEC) {
		status_send(a);
		return;
	}
	if (s->status_later)
		return;
	if (sd_event_add_time(a->event, &s->status_later, CLOCK_MONOTONIC,
			      s->last_status_usec + STATUS_MIN_INTERVAL_USEC, 0, on_status_later,
			      a) < 0)
		status_send(a);
}

static int on_refresh(sd_event_source *src, uint64_t usec, void *userdata)
{
	status_send(userdata);
	sd_event_source_set_time_relative(src, STATUS_REFRESH_USEC);
	sd_event_source_set_enabled(src, SD_EVENT_ON);
	return 0;
}

void service_note(struct agent *a, const char *note)
{
	snprintf(a->service->note, sizeof(a->service->note), "%s", note);
	status_update(a);
}

void service_warn(struct agent *a, const char *warning)
{
	snprintf(a->service->warning, sizeof(a->service->warning), "%s", warning ? warning : "");
	status_update(a);
}

/* ---- READY -------------------------------------------------------------- */

static bool relisted(struct agent *a)
{
	struct kube_watch_info w;

	for (int k = 0; k < KUBE_IMPORT_KINDS; k++) {
		kube_client_watch_info(a->client, k, &w);
		if (w.listing || !w.synced)
			return false;
	}
	return true;
}

static void reload_finish(struct agent *a, bool timed_out)
{
	struct service *s = a->service;

	s->reloading = false;
	s->reload_timeout = sd_event_source_disable_unref(s->reload_timeout);
	if (timed_out)
		log_warning("Reload: the API server was not listed again within %" PRIu64 " s; "
			    "the rules stay as they are while the client keeps trying",
			    RELOAD_TIMEOUT_USEC / USEC_PER_SEC);
	else
		log_info("Reload complete: Services and endpoints listed again and synced");
	status_send(a);
	notify_ready();
}

static void check_ready(struct agent *a)
{
	struct service *s = a->service;

	if (!s->notified_ready) {
		if (!a->ready || !resolv_settled(a->resolv))
			return;
		s->notified_ready = true;
		status_send(a);
		notify_ready();
	} else if (s->reloading) {
		if (!relisted(a) || model_has_dirty(a->model) || nft_pending(a->nft) ||
		    !resolv_settled(a->resolv))
			return;
		reload_finish(a, false);
	}
	sd_event_source_set_enabled(s->waiting, SD_EVENT_OFF);
}

/* After any event: the resolver's answer, the last list page... */
static int on_post(sd_event_source *src, void *userdata)
{
	check_ready(userdata);
	return 0;
}

void service_synced(struct agent *a)
{
	status_update(a);
	check_ready(a);
}

static int on_reload_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	if (a->service->reloading)
		reload_finish(a, true);
	sd_event_source_set_enabled(a->service->waiting, SD_EVENT_OFF);
	return 0;
}

void service_reload_begin(struct agent *a)
{
	struct service *s = a->service;

	/* Before READY=1 systemd is still waiting for the start to finish. */
	if (!s->notified_ready)
		return;
	notify_reloading();
	s->reloading = true;
	s->reload_timeout = sd_event_source_disable_unref(s->reload_timeout);
	if (sd_event_add_time_relative(a->event, &s->reload_timeout, CLOCK_MONOTONIC,
				       RELOAD_TIMEOUT_USEC, 0, on_reload_timeout, a) < 0) {
		reload_finish(a, true);
		return;
	}
	sd_event_source_set_enabled(s->waiting, SD_EVENT_ON);
}

void service_reload_ack(pid_t sender, int code, int value, bool ok)
{
	_cleanup_(freep) char *ours = NULL, *theirs = NULL;

	if (code != SI_QUEUE || value != SERVICE_RELOAD_ASK)
		return;
	if (sender <= 0 || sender == getpid() || sd_pid_get_cgroup(0, &ours) < 0 ||
	    sd_pid_get_cgroup(sender, &theirs) < 0 || !streq(ours, theirs))
		return;
	(void)kill(sender, ok ? SIGUSR1 : SIGUSR2);
}

int service_reload_main(const char *pid_text)
{
	struct timespec timeout = { .tv_sec = 30 };
	char *end;
	long pid;
	sigset_t mask;
	int sig;

	errno = 0;
	pid = strtol(pid_text, &end, 10);
	if (errno || end == pid_text || *end || pid <= 1) {
		log_error("--reload: '%s' is not a process ID", pid_text);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (sigqueue((pid_t)pid, SIGHUP, (union sigval){ .sival_int = SERVICE_RELOAD_ASK }) < 0) {
		log_error("Cannot signal kube-annex (PID %ld): %s", pid, strerror(errno));
		return 1;
	}
	sig = sigtimedwait(&mask, NULL, &timeout);
	if (sig == SIGUSR1)
		return 0;
	if (sig == SIGUSR2)
		log_error("Reload failed: the configuration or the kubeconfig is invalid; the "
			  "running configuration stays (the journal says why)");
	else
		log_error("kube-annex (PID %ld) did not answer the reload within %ld s", pid,
			  (long)timeout.tv_sec);
	return 1;
}

/* ---- lifecycle ---------------------------------------------------------- */

int service_new(struct agent *a)
{
	struct service *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	a->service = s;
	/* Keep-alives from this loop (at half of WatchdogSec=), so that a stuck
	 * loop stops them; nothing when systemd asks for none. */
	r = sd_event_set_watchdog(a->event, true);
	if (r < 0)
		return r;
	r = sd_event_add_post(a->event, &s->waiting, on_post, a);
	if (r < 0)
		return r;
	if (notify_enabled()) {
		r = sd_event_add_time_relative(a->event, &s->refresh, CLOCK_MONOTONIC,
					       STATUS_REFRESH_USEC, 5 * USEC_PER_SEC, on_refresh, a);
		if (r < 0)
			return r;
	}
	return 0;
}

void service_free(struct agent *a)
{
	struct service *s = a->service;

	if (!s)
		return;
	sd_event_source_disable_unref(s->refresh);
	sd_event_source_disable_unref(s->status_later);
	sd_event_source_disable_unref(s->waiting);
	sd_event_source_disable_unref(s->reload_timeout);
	free(s);
	a->service = NULL;
}

/* ---- stop or restart ---------------------------------------------------- */

static bool restart_job(const char *job)
{
	/* try-restart and reload-or-restart become "restart" when queued. */
	return job && (streq(job, "restart") || streq(job, "try-restart") ||
		       streq(job, "reload-or-restart") || streq(job, "reload-or-try-restart"));
}

bool service_restart_queued(void)
{
	_cleanup_(freep) char *unit = NULL, *job = NULL;
	int r = notify_unit_job(&unit, &job);

	if (r == -ENODATA)
		return false;
	if (r < 0) {
		log_warning("Cannot ask systemd whether the unit is being restarted (%s): removing "
			    "the rules as for a stop",
			    strerror(-r));
		return false;
	}
	if (!restart_job(job))
		return false;
	log_info("systemd is restarting %s: leaving the rules and DNS settings to the next "
		 "instance",
		 unit);
	return true;
}

bool service_stop_post_cleanup(char *why, size_t len)
{
	_cleanup_(freep) char *unit = NULL, *job = NULL;
	const char *result = getenv("SERVICE_RESULT");
	const char *code = getenv("EXIT_CODE"), *status = getenv("EXIT_STATUS");
	int r = notify_unit_job(&unit, &job);

	if (r >= 0 && restart_job(job)) {
		snprintf(why, len, "%s is being restarted: the next instance adopts the rules", unit);
		return false;
	}
	if (r >= 0 && job && streq(job, "stop")) {
		snprintf(why, len, "%s is being stopped", unit);
		return true;
	}
	if (!result || streq(result, "success")) {
		snprintf(why, len, "%s", result ? "the daemon exited" : "not run by systemd");
		return true;
	}
	if (code && status && streq(code, "exited") && streq(status, "2")) {
		snprintf(why, len, "the daemon failed with a configuration error");
		return true;
	}
	snprintf(why, len, "the daemon failed (%s: %s %s); systemd starts it again and the "
		 "next instance adopts the rules (kube-annex --cleanup removes them)",
		 result, code ? code : "?", status ? status : "?");
	return false;
}
