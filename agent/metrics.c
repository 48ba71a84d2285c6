/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The HTTP endpoint (default 127.0.0.1:10256, kube-proxy's healthz port):
 *
 *   /healthz  200 "ok" when the last sync succeeded and the watches are
 *             fresh, else 503 with the reason (see status.c);
 *   /livez    200 while the event loop runs (it answers from it);
 *   /metrics  Prometheus text, names prefixed kubeannex_, kube-proxy's
 *             names where the meaning is the same.
 *
 * libmicrohttpd runs without a thread of its own: its epoll fd is one more
 * source on the daemon's sd-event loop, MHD_run() is called when it is
 * readable, and a timer follows MHD_get_timeout() (no timer at all while
 * no connection is open, so an idle daemon does not wake up).
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <systemd/sd-event.h>

#include "agent/agent.h"
#include "agent/operate.h"
#include "lib/log.h"

#define CONNECTION_LIMIT 16u
#define CONNECTION_TIMEOUT_SEC 10u
#define BIND_RETRY_USEC (30 * USEC_PER_SEC)

struct metrics {
	struct agent *agent;
	struct sockaddr_storage address;
	char *address_text;
	struct MHD_Daemon *daemon;
	sd_event_source *io;
	sd_event_source *timer;
	sd_event_source *retry;
	bool bind_reported;
};

/* ---- address ------------------------------------------------------------ */

int operate_parse_address(const char *s, struct sockaddr_storage *ret, bool *ret_off)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *end;
	unsigned long p;
	char *pend;
	size_t len;
	bool bracketed = s && s[0] == '[';

	*ret_off = false;
	memset(ret, 0, sizeof(*ret));
	if (!s)
		return -EINVAL;
	if (streq(s, "off")) {
		*ret_off = true;
		return 0;
	}
	if (bracketed) {
		end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		len = (size_t)(end - s - 1);
		s++;
		port = end + 2;
	} else {
		end = strrchr(s, ':');
		if (!end || strchr(s, ':') != end)
			return -EINVAL;
		len = (size_t)(end - s);
		port = end + 1;
	}
	if (len == 0 || len >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, len);
	host[len] = 0;
	errno = 0;
	p = strtoul(port, &pend, 10);
	if (errno || pend == port || *pend || p == 0 || p > 65535 || port[0] == '+' ||
	    port[0] == '-')
		return -EINVAL;
	if (!bracketed && inet_pton(AF_INET, host, &((struct sockaddr_in *)ret)->sin_addr) == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ret;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ret)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ret;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		return 0;
	}
	memset(ret, 0, sizeof(*ret));
	return -EINVAL;
}

/* ---- Prometheus text (pure helpers) -------------------------------------- */

const char *prom_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 2 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = 0;
	return buf;
}

void prom_header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* labels: "" or 'a="b"' (without braces) */
void prom_histogram(FILE *f, const char *name, const char *labels, const struct histogram *h)
{
	const char *sep = labels[0] ? "," : "";

	for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
		fprintf(f, "%s_bucket{%s%sle=\"%.6g\"} %" PRIu64 "\n", name, labels, sep,
			(double)histogram_bound(i) / USEC_PER_SEC, histogram_cumulative(h, i));
	fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, h->count);
	fprintf(f, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
		(double)h->sum_usec / USEC_PER_SEC);
	fprintf(f, "%s_count%s%s%s %" PRIu64 "\n", name, labels[0] ? "{" : "", labels,
		labels[0] ? "}" : "", h->count);
}

/* ---- /metrics ------------------------------------------------------------ */

static const char *const families[2] = { "IPv4", "IPv6" };

static const char *resource_label(enum kube_kind k, const struct kube_watch_info *w)
{
	if (k == KUBE_KIND_SERVICE)
		return "services";
	if (w->resource && streq(w->resource, "Endpoints"))
		return "endpoints";
	return "endpointslices";
}

static double realtime_of(uint64_t mono)
{
	uint64_t now_m = now_usec(CLOCK_MONOTONIC), now_r = now_usec(CLOCK_REALTIME);

	if (!mono)
		return 0;
	return (double)(now_r - (now_m > mono ? now_m - mono : 0)) / USEC_PER_SEC;
}

static void render_syncs(FILE *f, struct agent *a)
{
	struct operate *op = a->operate;
	struct histogram all = op->sync_full;

	for (size_t i = 0; i <= HISTOGRAM_BUCKETS; i++)
		all.counts[i] += op->sync_partial.counts[i];
	all.count += op->sync_partial.count;
	all.sum_usec += op->sync_partial.sum_usec;

	prom_header(f, "kubeannex_sync_proxy_rules_duration_seconds", "histogram",
		    "Time a sync of the model to nftables took (full and partial)");
	prom_histogram(f, "kubeannex_sync_proxy_rules_duration_seconds", "", &all);
	prom_header(f, "kubeannex_sync_full_proxy_rules_duration_seconds", "histogram",
		    "Time a full sync took (the first, and after a failure or a self-heal "
		    "restoration: every Service staged again)");
	prom_histogram(f, "kubeannex_sync_full_proxy_rules_duration_seconds", "", &op->sync_full);
	prom_header(f, "kubeannex_sync_partial_proxy_rules_duration_seconds", "histogram",
		    "Time a partial sync (changed Services only) took");
	prom_histogram(f, "kubeannex_sync_partial_proxy_rules_duration_seconds", "",
		       &op->sync_partial);
	prom_header(f, "kubeannex_network_programming_duration_seconds", "histogram",
		    "From a change in the cluster (EndpointSlice last-change-trigger-time) to "
		    "its rules committed in the kernel of this host");
	prom_histogram(f, "kubeannex_network_programming_duration_seconds", "",
		       &a->cluster_latency);
	prom_header(f, "kubeannex_event_programming_duration_seconds", "histogram",
		    "From an API watch event reaching kube-annex to its rules committed in the "
		    "kernel");
	prom_histogram(f, "kubeannex_event_programming_duration_seconds", "", &a->event_latency);

	prom_header(f, "kubeannex_sync_proxy_rules_last_timestamp_seconds", "gauge",
		    "The last time a sync succeeded (Unix time)");
	fprintf(f, "kubeannex_sync_proxy_rules_last_timestamp_seconds %.3f\n",
		op->last_sync_realtime_usec ? (double)op->last_sync_realtime_usec / USEC_PER_SEC :
					      0.0);
	prom_header(f, "kubeannex_sync_proxy_rules_nftables_sync_failures_total", "counter",
		    "Syncs that failed to commit to nftables (each is retried with backoff)");
	fprintf(f, "kubeannex_sync_proxy_rules_nftables_sync_failures_total %" PRIu64 "\n",
		op->sync_failures);
	prom_header(f, "kubeannex_self_heal_restorations_total", "counter",
		    "Times kube-annex's tables were changed from outside and restored");
	fprintf(f, "kubeannex_self_heal_restorations_total %" PRIu64 "\n", a->restorations);
	prom_header(f, "kubeannex_conntrack_entries_deleted_total", "counter",
		    "UDP conntrack entries deleted because their endpoint left the Service port "
		    "(the client's next datagram picks a serving endpoint)");
	fprintf(f, "kubeannex_conntrack_entries_deleted_total %" PRIu64 "\n", a->conntrack_deleted);
	prom_header(f, "kubeannex_conntrack_cleanup_failures_total", "counter",
		    "Conntrack cleanups after a sync that failed (the rules were committed)");
	fprintf(f, "kubeannex_conntrack_cleanup_failures_total %" PRIu64 "\n",
		a->conntrack_failures);
}

static void render_state(FILE *f, struct agent *a)
{
	struct operate_summary sum;
	struct nft_stats ns;

	operate_summarize(a, &sum);
	nft_get_stats(a->nft, &ns);
	prom_header(f, "kubeannex_services", "gauge", "Services known from the API server");
	fprintf(f, "kubeannex_services %zu\n", sum.services);
	prom_header(f, "kubeannex_services_programmed", "gauge",
		    "Services with a ClusterIP of the family programmed in nftables");
	for (int i = 0; i < 2; i++)
		fprintf(f, "kubeannex_services_programmed{ip_family=\"%s\"} %zu\n", families[i],
			sum.services_by_family[i]);
	prom_header(f, "kubeannex_service_ports_programmed", "gauge",
		    "VIP . protocol . port entries committed in nftables");
	for (int i = 0; i < 2; i++)
		fprintf(f, "kubeannex_service_ports_programmed{ip_family=\"%s\"} %zu\n", families[i],
			sum.ports_by_family[i]);
	prom_header(f, "kubeannex_service_ports_without_endpoints", "gauge",
		    "Committed entries that reject or drop (no usable endpoint, or policy)");
	for (int i = 0; i < 2; i++)
		fprintf(f, "kubeannex_service_ports_without_endpoints{ip_family=\"%s\"} %zu\n",
			families[i], sum.rejecting_by_family[i]);
	prom_header(f, "kubeannex_endpoints_programmed", "gauge",
		    "Backends (endpoint . port per service port) committed in nftables");
	for (int i = 0; i < 2; i++)
		fprintf(f, "kubeannex_endpoints_programmed{ip_family=\"%s\"} %zu\n", families[i],
			sum.endpoints_by_family[i]);
	prom_header(f, "kubeannex_services_not_proxied", "gauge",
		    "Services whose traffic this host does not forward to endpoints, by reason");
	for (int r = 0; r < _REASON_MAX; r++)
		fprintf(f, "kubeannex_services_not_proxied{reason=\"%s\"} %zu\n",
			operate_reason_label(r), sum.reasons[r]);
	prom_header(f, "kubeannex_nftables_commits_total", "counter",
		    "nftables commits that sent something");
	fprintf(f, "kubeannex_nftables_commits_total %" PRIu64 "\n", ns.commits);
	prom_header(f, "kubeannex_nftables_adopted_service_ports", "gauge",
		    "Entries taken over at start from a previous run's tables (--keep-rules)");
	fprintf(f, "kubeannex_nftables_adopted_service_ports %zu\n", ns.adopted);
	prom_header(f, "kubeannex_bad_objects_total", "counter",
		    "API objects skipped because they could not be decoded");
	fprintf(f, "kubeannex_bad_objects_total %u\n", a->bad_objects);
}

static void render_api(FILE *f, struct agent *a)
{
	struct kube_api_error_count errs[KUBE_API_ERROR_CODES];
	size_t n = kube_client_api_errors(a->client, errs);
	struct kube_watch_info w[_KUBE_KIND_MAX];
	static const struct {
		const char *name, *type, *help;
	} per_watch[] = {
		{ "kubeannex_watch_up", "gauge", "1 while the watch is open and answered" },
		{ "kubeannex_watch_last_data_timestamp_seconds", "gauge",
		  "Last sign of the API server on this watch: event, bookmark, list page or "
		  "response (Unix time)" },
		{ "kubeannex_watch_relists_total", "counter",
		  "LISTs after the first complete one (410 Gone, errors)" },
		{ "kubeannex_watch_restarts_total", "counter",
		  "WATCH requests started after the first (server timeouts, errors, staleness)" },
		{ "kubeannex_watch_stale_reconnects_total", "counter",
		  "Watches dropped and opened again because nothing arrived for too long" },
	};

	for (int k = 0; k < KUBE_IMPORT_KINDS; k++)
		kube_client_watch_info(a->client, k, &w[k]);
	for (size_t i = 0; i < ARRAY_SIZE(per_watch); i++) {
		prom_header(f, per_watch[i].name, per_watch[i].type, per_watch[i].help);
		for (int k = 0; k < KUBE_IMPORT_KINDS; k++) {
			fprintf(f, "%s{resource=\"%s\"} ", per_watch[i].name, resource_label(k, &w[k]));
			switch (i) {
			case 0:
				fprintf(f, "%d\n", w[k].watching);
				break;
			case 1:
				fprintf(f, "%.3f\n", realtime_of(w[k].last_data_usec));
				break;
			case 2:
				fprintf(f, "%" PRIu64 "\n", w[k].relists);
				break;
			case 3:
				fprintf(f, "%" PRIu64 "\n", w[k].watch_restarts);
				break;
			default:
				fprintf(f, "%" PRIu64 "\n", w[k].stale_reconnects);
				break;
			}
		}
	}
	prom_header(f, "kubeannex_api_errors_total", "counter",
		    "Failed API server requests by HTTP status code (\"<error>\": no HTTP answer: "
		    "connection refused, TLS, timeout; watch error events count with their code)");
	if (n == 0)
		fprintf(f, "kubeannex_api_errors_total{code=\"<error>\"} 0\n");
	for (size_t i = 0; i < n; i++) {
		if (errs[i].code == 0)
			fprintf(f, "kubeannex_api_errors_total{code=\"<error>\"} %" PRIu64 "\n",
				errs[i].count);
		else if (errs[i].code < 0)
			fprintf(f, "kubeannex_api_errors_total{code=\"other\"} %" PRIu64 "\n",
				errs[i].count);
		else
			fprintf(f, "kubeannex_api_errors_total{code=\"%ld\"} %" PRIu64 "\n",
				errs[i].code, errs[i].count);
	}
}

static void render_health(FILE *f, struct agent *a)
{
	struct operate *op = a->operate;
	struct resolv_status rs;
	static const char *const kinds[] = { CONFLICT_KINDS };
	char reason[512];

	prom_header(f, "kubeannex_healthy", "gauge",
		    "1 when /healthz answers 200 (last sync succeeded, watches fresh)");
	fprintf(f, "kubeannex_healthy %d\n", operate_health(a, reason, sizeof(reason)) > 0);
	prom_header(f, "kubeannex_proxy_healthz_total", "counter", "/healthz answers by code");
	fprintf(f, "kubeannex_proxy_healthz_total{code=\"200\"} %" PRIu64 "\n", op->healthz_ok);
	fprintf(f, "kubeannex_proxy_healthz_total{code=\"503\"} %" PRIu64 "\n", op->healthz_fail);
	prom_header(f, "kubeannex_proxy_livez_total", "counter", "/livez answers by code");
	fprintf(f, "kubeannex_proxy_livez_total{code=\"200\"} %" PRIu64 "\n", op->livez_ok);

	resolv_get_status(a->resolv, &rs);
	prom_header(f, "kubeannex_dns_mode", "gauge",
		    "Cluster DNS on this host: 1 for the mode in effect");
	for (int m = RESOLV_MODE_RESOLVED; m < _RESOLV_MODE_MAX; m++)
		fprintf(f, "kubeannex_dns_mode{mode=\"%s\"} %d\n", resolv_mode_to_string(m),
			rs.mode == (enum resolv_mode)m);
	prom_header(f, "kubeannex_dns_configured", "gauge",
		    "1 when the host's resolver uses the cluster DNS now (0 in mode off)");
	fprintf(f, "kubeannex_dns_configured %d\n", rs.configured);

	prom_header(f, "kubeannex_conflicts", "gauge",
		    "Conflicts between the cluster's addresses and this host's addresses, routes "
		    "and nameservers, or endpoints without a route, by kind (see kube-annex status)");
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		fprintf(f, "kubeannex_conflicts{kind=\"%s\"} %zu\n", kinds[i],
			conflicts_count(op->conflicts, kinds[i]));
}

int metrics_render(struct agent *a, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	char v[64];

	if (!f)
		return -ENOMEM;
	prom_header(f, "kubeannex_build_info", "gauge", "kube-annex's version; always 1");
	fprintf(f, "kubeannex_build_info{version=\"%s\"} 1\n",
		prom_escape(KUBE_ANNEX_VERSION, v, sizeof(v)));
	render_syncs(f, a);
	render_state(f, a);
	render_api(f, a);
	render_health(f, a);
	/* No conntrack metric: kube-annex does not delete conntrack entries yet. */
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ---- HTTP ---------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type,
			       char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	r = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned code, const char *fmt,
				    ...) _printf_(3, 4);

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned code, const char *fmt,
				    ...)
{
	char *body = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return respond(conn, code, "text/plain; charset=utf-8", body, (size_t)n);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct metrics *m = cls;
	struct agent *a = m->agent;
	struct operate *op = a->operate;
	char reason[512];

	if (!streq(method, "GET") && !streq(method, "HEAD"))
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (*upload_size)
		return respond_text(conn, MHD_HTTP_BAD_REQUEST, "no body expected\n");
	if (streq(url, "/healthz")) {
		if (operate_health(a, reason, sizeof(reason)) > 0) {
			op->healthz_ok++;
			return respond_text(conn, MHD_HTTP_OK, "ok\n");
		}
		op->healthz_fail++;
		return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "%s\n", reason);
	}
	if (streq(url, "/livez")) {
		op->livez_ok++;
		return respond_text(conn, MHD_HTTP_OK, "ok\n");
	}
	if (streq(url, "/metrics")) {
		char *body;
		size_t len;

		if (metrics_render(a, &body, &len) < 0)
			return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
			       len);
	}
	return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /healthz, /livez, /metrics\n");
}

static void update_timer(struct metrics *m)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;

	if (MHD_get_timeout(m->daemon, &ms) != MHD_YES) {
		sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time_relative(m->timer, (uint64_t)ms * USEC_PER_MSEC);
	sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

static void run(struct metrics *m)
{
	if (MHD_run(m->daemon) != MHD_YES)
		log_debug("metrics: MHD_run failed");
	update_timer(m);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	run(userdata);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	run(userdata);
	return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	log_debug("metrics: %s", buf);
}

static int start(struct metrics *m);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct metrics *m = userdata;

	m->retry = sd_event_source_disable_unref(m->retry);
	return start(m);
}

static int start(struct metrics *m)
{
	struct agent *a = m->agent;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	int r;

	if (m->address.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	m->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
				     (struct sockaddr *)&m->address, MHD_OPTION_CONNECTION_LIMIT,
				     CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
				     CONNECTION_TIMEOUT_SEC, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m,
				     MHD_OPTION_END);
	if (!m->daemon) {
		r = errno ? -errno : -EADDRINUSE;
		if (!m->bind_reported)
			log_error("Cannot serve /healthz and /metrics on %s: %s; retrying every "
				  "%" PRIu64 " s",
				  m->address_text, strerror(-r), BIND_RETRY_USEC / USEC_PER_SEC);
		m->bind_reported = true;
		return sd_event_add_time_relative(a->event, &m->retry, CLOCK_MONOTONIC,
						  BIND_RETRY_USEC, USEC_PER_SEC, on_retry, m);
	}
	info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0)
		return -EIO;
	r = sd_event_add_io(a->event, &m->io, info->epoll_fd, EPOLLIN, on_io, m);
	if (r < 0)
		return r;
	sd_event_source_set_description(m->io, "metrics");
	r = sd_event_add_time(a->event, &m->timer, CLOCK_MONOTONIC, UINT64_MAX, USEC_PER_MSEC,
			      on_timer, m);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
	update_timer(m);
	log_info("Serving /healthz, /livez and /metrics on http://%s%s", m->address_text,
		 m->bind_reported ? " (the address is free now)" : "");
	return 0;
}

int metrics_new(struct agent *a, const char *address, struct metrics **ret)
{
	struct metrics *m;
	bool off;
	int r;

	*ret = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->agent = a;
	if (operate_parse_address(address, &m->address, &off) < 0) {
		free(m);
		return -EINVAL;
	}
	if (off) {
		free(m);
		return 0;
	}
	m->address_text = strdup(address);
	if (!m->address_text) {
		metrics_free(m);
		return -ENOMEM;
	}
	r = start(m);
	if (r < 0) {
		metrics_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

struct metrics *metrics_free(struct metrics *m)
{
	if (!m)
		return NULL;
	sd_event_source_disable_unref(m->io);
	sd_event_source_disable_unref(m->timer);
	sd_event_source_disable_unref(m->retry);
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	free(m->address_text);
	free(m);
	return NULL;
}
