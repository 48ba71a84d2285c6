/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The hooks agent/main.c calls, and the log of meaningful changes: one
 * info line per Service added, removed or changed and per change of the
 * endpoints a Service uses (with counts), at most LOG_LINES_PER_WINDOW per
 * LOG_WINDOW_USEC (then one line says how many were left out), none for
 * the initial list, whose progress is logged instead when it takes long.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "agent/agent.h"
#include "agent/operate.h"
#include "lib/log.h"

#define LOG_WINDOW_USEC (10 * USEC_PER_SEC)
#define LOG_LINES_PER_WINDOW 50u
#define PROGRESS_INTERVAL_USEC (2 * USEC_PER_SEC)

/* ---- gateway mode: does the host forward? ------------------------------- */

int operate_forwarding(int family, const char **ret_sysctl)
{
	static const char *const names[] = { "net.ipv4.ip_forward",
					     "net.ipv6.conf.all.forwarding" };
	static const char *const paths[] = { "/proc/sys/net/ipv4/ip_forward",
					     "/proc/sys/net/ipv6/conf/all/forwarding" };
	int i = family == AF_INET6;
	_cleanup_(closep) int fd = -1;
	char buf[16];
	ssize_t n;

	*ret_sysctl = names[i];
	fd = open(paths[i], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (n == 0 || buf[0] < '0' || buf[0] > '9')
		return -EBADMSG;
	return buf[0] != '0';
}

/* ---- structured log ------------------------------------------------------- */

#define LOG_FIELDS_MAX 8

/* Is stderr the journal's stream ($JOURNAL_STREAM is its "device:inode")? */
static bool journal_stream(void)
{
	static int cached = -1;
	const char *e;
	struct stat st;
	unsigned long long dev, ino;

	if (cached >= 0)
		return cached;
	e = getenv("JOURNAL_STREAM");
	cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
		 (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	return cached;
}

void operate_log(int level, const char *const *fields, const char *fmt, ...)
{
	char message[2048], priority[16], *msg_field = NULL;
	struct iovec iov[LOG_FIELDS_MAX + 3];
	size_t n = 0;
	va_list ap;

	if (level > log_get_max_level())
		return;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (journal_stream()) {
		msg_field = strdup_printf("MESSAGE=%s", message);
		snprintf(priority, sizeof(priority), "PRIORITY=%d", level);
		if (msg_field) {
			iov[n++] = (struct iovec){ msg_field, strlen(msg_field) };
			iov[n++] = (struct iovec){ priority, strlen(priority) };
			iov[n++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=kube-annex",
						   strlen("SYSLOG_IDENTIFIER=kube-annex") };
			for (size_t i = 0; fields && fields[i] && i < LOG_FIELDS_MAX; i++)
				iov[n++] = (struct iovec){ (char *)fields[i], strlen(fields[i]) };
			if (sd_journal_sendv(iov, (int)n) >= 0) {
				free(msg_field);
				return;
			}
		}
		free(msg_field);
	}
	log_msg(level, "%s", message);
}

/* ---- change log ------------------------------------------------------------ */

/* An info line about one Service, with KUBE_ANNEX_SERVICE=ns/name and
 * KUBE_ANNEX_CHANGE=what (and one more field) in the journal. */
static void service_log(const char *ns, const char *name, const char *what, const char *extra,
			const char *fmt, ...) _printf_(5, 6);

static void service_log(const char *ns, const char *name, const char *what, const char *extra,
			const char *fmt, ...)
{
	_cleanup_(freep) char *service = strdup_printf("KUBE_ANNEX_SERVICE=%s/%s", ns, name);
	_cleanup_(freep) char *change = strdup_printf("KUBE_ANNEX_CHANGE=%s", what);
	const char *fields[] = { service, change, extra, NULL };
	char message[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (!service || !change)
		fields[0] = NULL;
	operate_log(LOG_INFO, fields, "%s", message);
}

static bool change_log_allowed(struct operate *op)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	if (now - op->log_window_usec >= LOG_WINDOW_USEC) {
		if (op->log_suppressed)
			log_info("%u more Service changes in the last %" PRIu64 " s were not logged "
				 "one by one",
				 op->log_suppressed, LOG_WINDOW_USEC / USEC_PER_SEC);
		op->log_window_usec = now;
		op->log_lines = 0;
		op->log_suppressed = 0;
	}
	if (op->log_lines >= LOG_LINES_PER_WINDOW) {
		op->log_suppressed++;
		return false;
	}
	op->log_lines++;
	return true;
}

static void describe_service(const struct kube_service *svc, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	size_t o = 0;

	buf[0] = 0;
	if (svc->type == KUBE_SERVICE_EXTERNAL_NAME) {
		snprintf(buf, len, "ExternalName %s", svc->external_name ? svc->external_name : "?");
		return;
	}
	if (svc->headless)
		o += (size_t)snprintf(buf, len, "headless");
	for (size_t i = 0; i < svc->n_cluster_ips && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "ClusterIP ",
				      kube_ip_format(&svc->cluster_ips[i], ip, sizeof(ip)));
	for (size_t i = 0; i < svc->n_ports && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%u/%s", i ? "," : (o ? ", ports " : "ports "),
				      svc->ports[i].port, kube_protocol_name(svc->ports[i].protocol));
	if (svc->n_ports == 0 && o < len)
		snprintf(buf + o, len - o, "%sno ports", o ? ", " : "");
}

static bool same_shape(const struct kube_service *a, const struct kube_service *b)
{
	char x[512], y[512];

	if (a->type != b->type || a->headless != b->headless || a->n_external_ips != b->n_external_ips ||
	    a->internal_traffic_local != b->internal_traffic_local ||
	    a->affinity_client_ip != b->affinity_client_ip || !streq_ptr(a->proxy_name, b->proxy_name))
		return false;
	describe_service(a, x, sizeof(x));
	describe_service(b, y, sizeof(y));
	return streq(x, y);
}

/* Initial list: say how far it got when it takes a while. */
static void progress(struct operate *op)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	if (!op->list_start_usec)
		op->list_start_usec = op->list_progress_usec = now;
	if (now - op->list_progress_usec >= PROGRESS_INTERVAL_USEC) {
		op->list_progress_usec = now;
		log_info("Initial list in progress: %zu Services and %zu endpoint objects received "
			 "in %.1f s",
			 op->listed[0], op->listed[1],
			 (double)(now - op->list_start_usec) / USEC_PER_SEC);
	}
}

void operate_service_upsert(struct agent *a, const struct kube_service *old,
			    const struct kube_service *svc)
{
	struct operate *op = a->operate;
	char desc[512];

	if (!op)
		return;
	if (!a->ready) {
		op->listed[0]++;
		progress(op);
		return;
	}
	conflicts_schedule(op->conflicts);
	if (old && same_shape(old, svc))
		return;
	if (!change_log_allowed(op))
		return;
	describe_service(svc, desc, sizeof(desc));
	service_log(svc->namespace, svc->name, old ? "changed" : "added", NULL,
		    "Service %s/%s %s: %s", svc->namespace, svc->name, old ? "changed" : "added",
		    desc);
}

void operate_service_delete(struct agent *a, const char *ns, const char *name)
{
	struct operate *op = a->operate;

	if (!op || !a->ready || !model_service_get(a->model, ns, name))
		return;
	conflicts_schedule(op->conflicts);
	if (change_log_allowed(op))
		service_log(ns, name, "removed", NULL, "Service %s/%s removed", ns, name);
}

void operate_endpoints_upsert(struct agent *a)
{
	struct operate *op = a->operate;

	if (!op || a->ready)
		return;
	op->listed[1]++;
	progress(op);
}

struct endpoint_count {
	size_t total, ready, terminating;
};

static int count_slice(const struct kube_endpoint_slice *sl, void *userdata)
{
	struct endpoint_count *c = userdata;

	for (size_t i = 0; i < sl->n_endpoints; i++) {
		c->total++;
		c->ready += sl->endpoints[i].ready;
		c->terminating += sl->endpoints[i].terminating;
	}
	return 0;
}

/* model_flush_changes() reports each Service it flushed. */
static void on_flushed(const char *key, const struct kube_service *svc, size_t before,
		       size_t after, void *userdata)
{
	struct agent *a = userdata;
	struct endpoint_count c = {};
	char endpoints[48];

	if (!a->ready || before == after)
		return;
	conflicts_schedule(a->operate->conflicts);
	if (!change_log_allowed(a->operate))
		return;
	(void)model_service_slices(a->model, svc->namespace, svc->name, count_slice, &c);
	snprintf(endpoints, sizeof(endpoints), "KUBE_ANNEX_ENDPOINTS=%zu", after);
	service_log(svc->namespace, svc->name, "endpoints", endpoints,
		    "Service %s: endpoints in use %zu -> %zu (%zu listed: %zu ready, %zu terminating)",
		    key, before, after, c.total, c.ready, c.terminating);
}

/* ---- syncs and troubles ----------------------------------------------------- */

void operate_sync_done(struct agent *a, uint64_t start_usec)
{
	struct operate *op = a->operate;
	uint64_t took;

	if (!op)
		return;
	took = a->last_sync_usec > start_usec ? a->last_sync_usec - start_usec : 0;
	histogram_add(op->full_pending ? &op->sync_full : &op->sync_partial, took);
	/* The first check, now that all is listed; again after a full sync (a
	 * reload may have changed the Service CIDRs). */
	if (op->syncs++ == 0 || op->full_pending)
		conflicts_schedule(op->conflicts);
	op->full_pending = false;
	op->last_sync_took_usec = took;
	op->last_sync_realtime_usec = now_usec(CLOCK_REALTIME);
	if (op->sync_failing)
		log_info("Sync succeeded again after %" PRIu64 " failures", op->sync_failures);
	op->sync_failing = false;
}

void operate_sync_failed(struct agent *a, const char *error)
{
	struct operate *op = a->operate;

	if (!op)
		return;
	op->sync_failures++;
	op->sync_failing = true;
	op->full_pending = true;
	op->sync_error_usec = now_usec(CLOCK_MONOTONIC);
	free(op->sync_error);
	op->sync_error = strdup_or_null(error);
}

void operate_full_sync_needed(struct agent *a)
{
	if (a->operate)
		a->operate->full_pending = true;
}

void operate_trouble(struct agent *a, const char *what)
{
	struct operate *op = a ? a->operate : NULL;

	if (!op)
		return;
	snprintf(op->trouble, sizeof(op->trouble), "%s", what);
	op->trouble_usec = now_usec(CLOCK_MONOTONIC);
}

/* resolv/ reports its first problems before operate_new(): kept here. */
static char early_dns_problem[256];
static uint64_t early_dns_problem_usec;

void operate_dns_report(struct agent *a, int priority, const char *message)
{
	struct operate *op = a ? a->operate : NULL;

	if (!a || priority > LOG_WARNING)
		return;
	if (!op) {
		snprintf(early_dns_problem, sizeof(early_dns_problem), "%s", message);
		early_dns_problem_usec = now_usec(CLOCK_MONOTONIC);
		return;
	}
	snprintf(op->dns_problem, sizeof(op->dns_problem), "%s", message);
	op->dns_problem_usec = now_usec(CLOCK_MONOTONIC);
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* For tests: a short staleness bound (the default suits real clusters). */
static void stale_override(struct agent *a)
{
	const char *e = secure_getenv("KUBE_ANNEX_WATCH_STALE_SECONDS");
	char *end;
	unsigned long s;

	if (!e || !*e)
		return;
	errno = 0;
	s = strtoul(e, &end, 10);
	if (errno || *end || s == 0 || s > 86400) {
		log_warning("Ignoring KUBE_ANNEX_WATCH_STALE_SECONDS=%s: not 1..86400", e);
		return;
	}
	kube_client_set_stale_timeout(a->client, s * USEC_PER_SEC);
	log_notice("Watches are considered stale after %lu s of silence "
		   "(KUBE_ANNEX_WATCH_STALE_SECONDS)",
		   s);
}

int operate_new(struct agent *a, const struct operate_options *o)
{
	const char *address = o && o->metrics_address ? o->metrics_address :
							OPERATE_DEFAULT_METRICS_ADDRESS;
	const char *path = o && o->control_path ? o->control_path : OPERATE_DEFAULT_CONTROL_PATH;
	struct operate *op = calloc(1, sizeof(*op));
	int r;

	if (!op)
		return -ENOMEM;
	a->operate = op;
	op->agent = a;
	op->full_pending = true;
	if (early_dns_problem[0]) {
		memcpy(op->dns_problem, early_dns_problem, sizeof(op->dns_problem));
		op->dns_problem_usec = early_dns_problem_usec;
		early_dns_problem[0] = 0;
	}
	if (!streq(address, "off") && !(op->metrics_address = strdup(address)))
		return -ENOMEM;
	op->control_path = strdup(path);
	if (!op->control_path)
		return -ENOMEM;
	stale_override(a);
	model_set_flushed_callback(a->model, on_flushed, a);
	r = conflicts_new(a, &op->conflicts);
	if (r < 0)
		return r;
	r = control_new(a, path, &op->control);
	if (r < 0)
		return r;
	r = metrics_new(a, address, &op->metrics);
	if (r == -EINVAL)
		log_error("Invalid metrics address '%s' (ADDR:PORT, [ADDR]:PORT or off)", address);
	return r;
}

void operate_free(struct agent *a)
{
	struct operate *op = a->operate;

	if (!op)
		return;
	if (a->model)
		model_set_flushed_callback(a->model, NULL, NULL);
	op->metrics = metrics_free(op->metrics);
	op->control = control_free(op->control);
	op->conflicts = conflicts_free(op->conflicts);
	free(op->sync_error);
	free(op->metrics_address);
	free(op->control_path);
	free(op);
	a->operate = NULL;
}
