/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Health and `kube-annex status`.
 *
 * /healthz is 200 when the daemon has programmed the cluster once, its last
 * sync succeeded and both watches are fresh: open and heard from within the
 * staleness bound, or, while reconnecting, heard from within the last 30 s
 * (or the bound, if shorter). Otherwise 503 with the first reason.
 * Warnings (conflicts, a DNS mode that is not working, skipped objects) do
 * not fail /healthz; `status` reports them and exits 1 ("degraded").
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h> /* isfinite */
#include <stdarg.h>

#include "agent/agent.h"
#include "agent/operate.h"
#include "lib/log.h"

/* A watch that is reconnecting counts as stale after this long without a
 * word from the API server (at most the staleness bound). */
#define DISCONNECTED_GRACE_USEC (30 * USEC_PER_SEC)

static const char *const reason_labels[_REASON_MAX] = {
	[REASON_EXTERNAL_NAME] = "external_name",
	[REASON_HEADLESS] = "headless",
	[REASON_OTHER_PROXY] = "other_proxy",
	[REASON_NO_CLUSTER_IP] = "no_cluster_ip",
	[REASON_ITP_LOCAL] = "internal_traffic_policy_local",
	[REASON_NO_ENDPOINTS] = "no_endpoints",
};

static const char *const reason_texts[_REASON_MAX] = {
	[REASON_EXTERNAL_NAME] = "ExternalName (DNS only)",
	[REASON_HEADLESS] = "headless (DNS only)",
	[REASON_OTHER_PROXY] = "handed to another proxy (service-proxy-name)",
	[REASON_NO_CLUSTER_IP] = "no ClusterIP",
	[REASON_ITP_LOCAL] = "internalTrafficPolicy Local (dropped here)",
	[REASON_NO_ENDPOINTS] = "without usable endpoints (rejected)",
};

const char *operate_reason_label(enum operate_reason r)
{
	return r < _REASON_MAX ? reason_labels[r] : "none";
}

const char *operate_reason_text(enum operate_reason r)
{
	return r < _REASON_MAX ? reason_texts[r] : "forwarded";
}

/* Same order as model_service_skip_reason(). */
enum operate_reason operate_service_reason(const struct kube_service *svc)
{
	if (svc->type == KUBE_SERVICE_EXTERNAL_NAME)
		return REASON_EXTERNAL_NAME;
	if (svc->headless || svc->headless_label)
		return REASON_HEADLESS;
	if (svc->proxy_name)
		return REASON_OTHER_PROXY;
	if (svc->n_cluster_ips == 0)
		return REASON_NO_CLUSTER_IP;
	if (svc->internal_traffic_local)
		return REASON_ITP_LOCAL;
	return _REASON_MAX;
}

const char *operate_format_seconds(double s, char *buf, size_t len)
{
	if (!isfinite(s) || s < 0)
		snprintf(buf, len, "?");
	else if (s < 0.001)
		snprintf(buf, len, "%.2f ms", s * 1000);
	else if (s < 0.01)
		snprintf(buf, len, "%.1f ms", s * 1000);
	else if (s < 1)
		snprintf(buf, len, "%.0f ms", s * 1000);
	else if (s < 60)
		snprintf(buf, len, "%.1f s", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm %02ds", (int)s / 60, (int)s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%dh %02dm", (int)s / 3600, (int)s % 3600 / 60);
	else
		snprintf(buf, len, "%lud %02luh", (unsigned long)s / 86400,
			 (unsigned long)s % 86400 / 3600);
	return buf;
}

/* ---- summary ---------------------------------------------------------------- */

struct summarize {
	struct agent *agent;
	struct operate_summary *sum;
	bool any_forward;
	bool any;
};

static int entry_seen(const struct model_key *key, const struct model_entry *e, void *userdata)
{
	struct summarize *s = userdata;

	s->any = true;
	if (e->verdict == MODEL_FORWARD && e->n_backends > 0)
		s->any_forward = true;
	return 0;
}

static int summarize_service(const struct kube_service *svc, void *userdata)
{
	struct summarize *s = userdata;
	enum operate_reason r = operate_service_reason(svc);

	s->sum->services++;
	if (r == _REASON_MAX) {
		s->any = s->any_forward = false;
		(void)model_service_entries(s->agent->model, svc->namespace, svc->name, entry_seen, s);
		if (s->any && !s->any_forward)
			r = REASON_NO_ENDPOINTS;
	}
	if (r != _REASON_MAX)
		s->sum->reasons[r]++;
	if (operate_service_reason(svc) == _REASON_MAX || r == REASON_ITP_LOCAL) {
		bool fam[2] = {};

		for (size_t i = 0; i < svc->n_cluster_ips; i++)
			fam[svc->cluster_ips[i].family == AF_INET6] = true;
		for (int f = 0; f < 2; f++)
			s->sum->services_by_family[f] += fam[f];
	}
	return 0;
}

static int committed_seen(const struct model_key *key, const struct model_entry *e, void *userdata)
{
	struct operate_summary *sum = userdata;
	int f = key->vip.family == AF_INET6;

	sum->ports_by_family[f]++;
	sum->endpoints_by_family[f] += e->n_backends;
	if (e->verdict != MODEL_FORWARD || e->n_backends == 0)
		sum->rejecting_by_family[f]++;
	return 0;
}

int operate_summarize(struct agent *a, struct operate_summary *ret)
{
	struct summarize s = { .agent = a, .sum = ret };
	struct model_stats ms;
	int r;

	*ret = (struct operate_summary){};
	model_get_stats(a->model, &ms);
	ret->proxied = ms.services_proxied;
	r = model_foreach_service(a->model, summarize_service, &s);
	if (r >= 0)
		r = nft_foreach_committed(a->nft, committed_seen, ret);
	return r;
}

/* ---- health ----------------------------------------------------------------- */

static const char *kind_name(enum kube_kind k)
{
	return k == KUBE_KIND_SERVICE ? "services" :
	       k == KUBE_KIND_SERVICE_CIDR ? "servicecidrs" : "endpoints";
}

int operate_health(struct agent *a, char *reason, size_t len)
{
	struct operate *op = a->operate;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	uint64_t stale = kube_client_get_stale_timeout(a->client);
	uint64_t grace = stale < DISCONNECTED_GRACE_USEC ? stale : DISCONNECTED_GRACE_USEC;
	char t[32];

	for (int k = 0; k < KUBE_IMPORT_KINDS; k++) {
		struct kube_watch_info w;
		uint64_t last, age;

		kube_client_watch_info(a->client, k, &w);
		last = w.last_data_usec ? w.last_data_usec : a->start_usec;
		age = now > last ? now - last : 0;
		if (!a->ready) {
			if (!w.synced) {
				snprintf(reason, len, "starting: the first list of %s is not complete%s%s%s",
					 kind_name(k), op->trouble[0] ? " (last problem: " : "",
					 op->trouble, op->trouble[0] ? ")" : "");
				return 0;
			}
			continue;
		}
		if (w.watching && age > stale) {
			snprintf(reason, len, "%s watch is stale: nothing from the API server for %s",
				 w.resource ? w.resource : kind_name(k),
				 operate_format_seconds((double)age / USEC_PER_SEC, t, sizeof(t)));
			return 0;
		}
		/* Reconnecting: count from the start of the outage, so that a watch
		 * opened again (server timeout, staleness) is not an outage. */
		if (!w.watching && w.down_since_usec && now - w.down_since_usec > grace) {
			snprintf(reason, len,
				 "%s watch is stale: no answer from the API server for %s%s%s%s",
				 w.resource ? w.resource : kind_name(k),
				 operate_format_seconds((double)(now - w.down_since_usec) /
							USEC_PER_SEC, t, sizeof(t)),
				 op->trouble[0] ? " (last problem: " : "",
				 op->trouble[0] ? op->trouble : "", op->trouble[0] ? ")" : "");
			return 0;
		}
	}
	if (!a->ready) {
		snprintf(reason, len, "starting: the first sync has not completed");
		return 0;
	}
	if (op->sync_failing) {
		snprintf(reason, len, "the last sync failed %s ago: %s",
			 operate_format_seconds((double)(now - op->sync_error_usec) / USEC_PER_SEC, t,
						sizeof(t)),
			 op->sync_error ? op->sync_error : "?");
		return 0;
	}
	snprintf(reason, len, "ok");
	return 1;
}

static void add_warning(cJSON *arr, const char *fmt, ...) _printf_(2, 3);

static void add_warning(cJSON *arr, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cJSON_AddItemToArray(arr, cJSON_CreateString(buf));
}

/* Gateway mode for a family the host does not forward, when there are
 * Services of that family: other machines cannot reach them. */
static void gateway_warnings(struct agent *a, cJSON *arr)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct operate_summary sum;

	if (!nft_get_gateway(a->nft) || operate_summarize(a, &sum) < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		const char *family = i == 0 ? "IPv4" : "IPv6", *sysctl;

		if (sum.services_by_family[i] && operate_forwarding(families[i], &sysctl) == 0)
			add_warning(arr, "gateway mode: this host does not forward %s (%s = 0): "
					 "other machines cannot reach the %zu %s Services through it",
				    family, sysctl, sum.services_by_family[i], family);
	}
}

int operate_warnings(struct agent *a, cJSON *arr)
{
	struct operate *op = a->operate;
	struct resolv_status rs;
	size_t n0 = (size_t)cJSON_GetArraySize(arr);
	cJSON *conflicts = conflicts_json(op->conflicts), *c;

	cJSON_ArrayForEach(c, conflicts) {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "message");

		if (cJSON_IsString(m))
			add_warning(arr, "conflict: %s", m->valuestring);
	}
	cJSON_Delete(conflicts);
	if (conflicts_more(op->conflicts))
		add_warning(arr, "%zu more conflicts not listed", conflicts_more(op->conflicts));
	if (conflicts_note(op->conflicts))
		add_warning(arr, "conflict check incomplete: %s", conflicts_note(op->conflicts));
	gateway_warnings(a, arr);
	resolv_get_status(a->resolv, &rs);
	/* Off because the mode asked for could not be used (auto reports that
	 * at notice level, which is not kept: no warning then). */
	if (rs.mode == RESOLV_MODE_OFF && op->dns_problem[0])
		add_warning(arr, "cluster DNS is off: %s", op->dns_problem);
	if (rs.mode != RESOLV_MODE_OFF && !rs.configured)
		add_warning(arr, "cluster DNS (%s mode) is not in effect%s%s", resolv_mode_to_string(rs.mode),
			    op->dns_problem[0] ? ": " : (rs.n_servers ? "" : ": the DNS Service is not known"),
			    op->dns_problem[0] ? op->dns_problem : "");
	if (a->bad_objects)
		add_warning(arr, "%u API objects were skipped because they could not be decoded "
				 "(see the log)",
			    a->bad_objects);
	return cJSON_GetArraySize(arr) - (int)n0;
}

/* ---- the status document ------------------------------------------------------ */

static double seconds_since(uint64_t then, uint64_t now)
{
	return then && now > then ? (double)(now - then) / USEC_PER_SEC : 0;
}

static cJSON *watch_json(const struct kube_watch_info *wi, uint64_t now)
{
	struct kube_watch_info w = *wi;
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "kind", kind_name(w.kind));
	if (w.resource)
		cJSON_AddStringToObject(o, "resource", w.resource);
	if (w.scope)
		cJSON_AddStringToObject(o, "scope", w.scope);
	cJSON_AddStringToObject(o, "state", w.watching ? "watching" :
					    w.listing  ? "listing" :
					    w.resource ? "reconnecting" :
							 "discovering");
	cJSON_AddBoolToObject(o, "synced", w.synced);
	if (w.since_usec)
		cJSON_AddNumberToObject(o, "since_seconds", seconds_since(w.since_usec, now));
	if (w.last_data_usec)
		cJSON_AddNumberToObject(o, "last_data_seconds_ago",
					seconds_since(w.last_data_usec, now));
	cJSON_AddNumberToObject(o, "lists", (double)w.lists);
	cJSON_AddNumberToObject(o, "relists", (double)w.relists);
	cJSON_AddNumberToObject(o, "watch_restarts", (double)w.watch_restarts);
	cJSON_AddNumberToObject(o, "stale_reconnects", (double)w.stale_reconnects);
	return o;
}

/* What is imported: namespaces (null: all), the label selector, the
 * cluster DNS Service imported whatever the scope. */
static cJSON *scope_json(const struct kube_scope *s)
{
	cJSON *o = cJSON_CreateObject(), *ns;

	if (!o)
		return NULL;
	if (s->namespaces) {
		ns = cJSON_AddArrayToObject(o, "namespaces");
		for (const char *p = s->namespaces; ns && *p;) {
			size_t len = strcspn(p, ",");
			char name[KUBE_MAX_NAME_LEN + 1];

			snprintf(name, sizeof(name), "%.*s", (int)len, p);
			cJSON_AddItemToArray(ns, cJSON_CreateString(name));
			p += len;
			p += *p == ',';
		}
	} else {
		cJSON_AddNullToObject(o, "namespaces");
	}
	if (s->label_selector)
		cJSON_AddStringToObject(o, "label_selector", s->label_selector);
	else
		cJSON_AddNullToObject(o, "label_selector");
	if (s->dns_service)
		cJSON_AddStringToObject(o, "dns_service", s->dns_service);
	return o;
}

/* The Service CIDRs in effect and where they came from. */
static cJSON *service_cidrs_json(struct agent *a)
{
	struct kube_cidr cidrs[NFT_MAX_SERVICE_CIDRS];
	size_t n = nft_get_service_cidrs(a->nft, cidrs);
	cJSON *o = cJSON_CreateObject(), *arr;
	bool forbidden = false;
	const char *api = kube_client_service_cidr_api(a->client, &forbidden);

	if (!o)
		return NULL;
	arr = cJSON_AddArrayToObject(o, "cidrs");
	for (size_t i = 0; i < n && arr; i++) {
		char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 8];

		snprintf(buf, sizeof(buf), "%s/%u", kube_ip_format(&cidrs[i].addr, ip, sizeof(ip)),
			 cidrs[i].prefix);
		cJSON_AddItemToArray(arr, cJSON_CreateString(buf));
	}
	if (a->service_cidr_source)
		cJSON_AddStringToObject(o, "source", a->service_cidr_source);
	else
		cJSON_AddNullToObject(o, "source");
	if (api)
		cJSON_AddStringToObject(o, "api", api);
	else
		cJSON_AddNullToObject(o, "api");
	cJSON_AddNumberToObject(o, "objects", (double)a->n_service_cidrs);
	cJSON_AddBoolToObject(o, "forbidden", forbidden);
	return o;
}

static cJSON *api_json(struct agent *a, uint64_t now)
{
	struct operate *op = a->operate;
	struct kube_api_error_count errs[KUBE_API_ERROR_CODES];
	size_t n = kube_client_api_errors(a->client, errs);
	cJSON *o = cJSON_CreateObject(), *watches, *errors;
	/* per namespace two kinds, the cluster DNS Service's two, ServiceCIDRs */
	struct kube_watch_info w[2 * KUBE_MAX_NAMESPACES + 3];
	size_t n_watches;
	bool connected = true;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "server", a->config->server);
	cJSON_AddStringToObject(o, "kubeconfig", a->config->path);
	cJSON_AddStringToObject(o, "context", a->config->context);
	cJSON_AddStringToObject(o, "user", a->config->user);
	cJSON_AddStringToObject(o, "endpoints_api", kube_client_endpoints_api(a->client));
	watches = cJSON_AddArrayToObject(o, "watches");
	n_watches = kube_client_watches(a->client, w, ARRAY_SIZE(w));
	if (n_watches == 0) {
		/* before discovery: one line per kind */
		for (int k = 0; k < KUBE_IMPORT_KINDS; k++) {
			kube_client_watch_info(a->client, k, &w[k]);
			connected = connected && w[k].watching;
			cJSON_AddItemToArray(watches, watch_json(&w[k], now));
		}
	}
	for (size_t i = 0; i < n_watches && i < ARRAY_SIZE(w); i++) {
		/* ServiceCIDRs are optional: refused, they are done without */
		connected = connected && (w[i].watching || w[i].kind == KUBE_KIND_SERVICE_CIDR);
		cJSON_AddItemToArray(watches, watch_json(&w[i], now));
	}
	if (n_watches > ARRAY_SIZE(w))
		cJSON_AddNumberToObject(o, "watches_not_shown", (double)(n_watches - ARRAY_SIZE(w)));
	cJSON_AddItemToObject(o, "scope", scope_json(kube_client_scope(a->client)));
	cJSON_AddItemToObject(o, "service_cidrs", service_cidrs_json(a));
	cJSON_AddBoolToObject(o, "connected", connected);
	cJSON_AddNumberToObject(o, "stale_after_seconds",
				(double)kube_client_get_stale_timeout(a->client) / USEC_PER_SEC);
	errors = cJSON_AddObjectToObject(o, "errors");
	for (size_t i = 0; i < n && errors; i++) {
		char code[24];

		if (errs[i].code == 0)
			snprintf(code, sizeof(code), "no answer");
		else if (errs[i].code < 0)
			snprintf(code, sizeof(code), "other");
		else
			snprintf(code, sizeof(code), "%ld", errs[i].code);
		cJSON_AddNumberToObject(errors, code, (double)errs[i].count);
	}
	if (op->trouble[0]) {
		cJSON *p = cJSON_AddObjectToObject(o, "last_problem");

		cJSON_AddStringToObject(p, "message", op->trouble);
		cJSON_AddNumberToObject(p, "seconds_ago", seconds_since(op->trouble_usec, now));
	}
	return o;
}

static cJSON *services_json(struct agent *a)
{
	struct operate_summary sum;
	struct model_stats ms;
	cJSON *o = cJSON_CreateObject(), *np;

	if (!o)
		return NULL;
	operate_summarize(a, &sum);
	model_get_stats(a->model, &ms);
	cJSON_AddNumberToObject(o, "known", (double)sum.services);
	cJSON_AddNumberToObject(o, "proxied", (double)sum.proxied);
	np = cJSON_AddObjectToObject(o, "not_forwarded");
	for (int r = 0; r < _REASON_MAX && np; r++)
		if (sum.reasons[r])
			cJSON_AddNumberToObject(np, operate_reason_label(r), (double)sum.reasons[r]);
	cJSON_AddNumberToObject(o, "service_ports", (double)(sum.ports_by_family[0] +
							     sum.ports_by_family[1]));
	cJSON_AddNumberToObject(o, "endpoints", (double)(sum.endpoints_by_family[0] +
							 sum.endpoints_by_family[1]));
	cJSON_AddNumberToObject(o, "ipv4_services", (double)sum.services_by_family[0]);
	cJSON_AddNumberToObject(o, "ipv6_services", (double)sum.services_by_family[1]);
	return o;
}

/* Gateway mode, and whether the host forwards each family (null: unknown,
 * e.g. no IPv6): it is the host's setting, not ours. */
static cJSON *gateway_json(struct agent *a)
{
	static const int families[] = { AF_INET, AF_INET6 };
	static const char *const keys[] = { "ipv4_forwarding", "ipv6_forwarding" };
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddBoolToObject(o, "enabled", nft_get_gateway(a->nft));
	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		const char *sysctl;
		int r = operate_forwarding(families[i], &sysctl);

		if (r < 0)
			cJSON_AddNullToObject(o, keys[i]);
		else
			cJSON_AddBoolToObject(o, keys[i], r > 0);
	}
	return o;
}

static cJSON *datapath_json(struct agent *a, uint64_t now)
{
	struct operate *op = a->operate;
	struct nft_stats ns;
	cJSON *o = cJSON_CreateObject(), *last;

	if (!o)
		return NULL;
	nft_get_stats(a->nft, &ns);
	cJSON_AddNumberToObject(o, "service_ports", (double)ns.entries);
	cJSON_AddNumberToObject(o, "backends", (double)ns.backends);
	cJSON_AddNumberToObject(o, "groups", (double)ns.groups);
	cJSON_AddNumberToObject(o, "adopted", (double)ns.adopted);
	cJSON_AddNumberToObject(o, "commits", (double)ns.commits);
	cJSON_AddNumberToObject(o, "syncs", (double)op->syncs);
	cJSON_AddNumberToObject(o, "sync_failures", (double)op->sync_failures);
	cJSON_AddNumberToObject(o, "restorations", (double)a->restorations);
	cJSON_AddItemToObject(o, "gateway", gateway_json(a));
	last = cJSON_AddObjectToObject(o, "last_sync");
	if (last && a->last_sync_usec) {
		cJSON_AddNumberToObject(last, "seconds_ago", seconds_since(a->last_sync_usec, now));
		cJSON_AddNumberToObject(last, "duration_seconds",
					(double)op->last_sync_took_usec / USEC_PER_SEC);
	}
	if (last) {
		cJSON_AddBoolToObject(last, "ok", !op->sync_failing);
		if (op->sync_failing && op->sync_error)
			cJSON_AddStringToObject(last, "error", op->sync_error);
	}
	return o;
}

static cJSON *ips_json(const struct kube_ip *ips, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < n && arr; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(kube_ip_format(&ips[i], buf, sizeof(buf))));
	return arr;
}

cJSON *operate_dns_json(struct agent *a)
{
	struct operate *op = a->operate;
	struct resolv_status rs;
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	resolv_get_status(a->resolv, &rs);
	cJSON_AddStringToObject(o, "mode", resolv_mode_to_string(rs.mode));
	if (rs.mode != RESOLV_MODE_OFF) {
		char svc[2 * KUBE_MAX_NAME_LEN + 2];

		cJSON_AddStringToObject(o, "domain", rs.domain);
		if (!rs.fixed) {
			snprintf(svc, sizeof(svc), "%s/%s", rs.service_ns, rs.service_name);
			cJSON_AddStringToObject(o, "service", svc);
		}
		cJSON_AddItemToObject(o, "servers", ips_json(rs.servers, rs.n_servers));
		cJSON_AddBoolToObject(o, "configured", rs.configured);
		if (rs.link_kind) {
			cJSON_AddStringToObject(o, "link", RESOLV_LINK_NAME);
			cJSON_AddStringToObject(o, "link_kind", rs.link_kind);
			cJSON_AddItemToObject(o, "link_addresses",
					      ips_json(rs.link_addrs, rs.n_link_addrs));
		}
	}
	if (op->dns_problem[0]) {
		cJSON *p = cJSON_AddObjectToObject(o, "last_problem");

		cJSON_AddStringToObject(p, "message", op->dns_problem);
		cJSON_AddNumberToObject(p, "seconds_ago",
					seconds_since(op->dns_problem_usec, now_usec(CLOCK_MONOTONIC)));
	}
	return o;
}

cJSON *status_build(struct agent *a)
{
	struct operate *op = a->operate;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	cJSON *doc = cJSON_CreateObject(), *health, *warnings;
	char reason[512];
	int healthy;

	if (!doc)
		return NULL;
	healthy = operate_health(a, reason, sizeof(reason));
	cJSON_AddStringToObject(doc, "version", KUBE_ANNEX_VERSION);
	cJSON_AddNumberToObject(doc, "pid", (double)getpid());
	cJSON_AddNumberToObject(doc, "uptime_seconds", seconds_since(a->start_usec, now));
	health = cJSON_AddObjectToObject(doc, "health");
	warnings = cJSON_CreateArray();
	if (health && warnings) {
		int n = operate_warnings(a, warnings);

		cJSON_AddStringToObject(health, "status",
					!healthy ? "unhealthy" : n > 0 ? "degraded" : "healthy");
		cJSON_AddNumberToObject(health, "healthz", healthy ? 200 : 503);
		cJSON_AddStringToObject(health, "reason", reason);
		cJSON_AddItemToObject(health, "warnings", warnings);
	} else {
		cJSON_Delete(warnings);
	}
	cJSON_AddItemToObject(doc, "api", api_json(a, now));
	cJSON_AddItemToObject(doc, "services", services_json(a));
	cJSON_AddItemToObject(doc, "datapath", datapath_json(a, now));
	cJSON_AddItemToObject(doc, "dns", operate_dns_json(a));
	cJSON_AddItemToObject(doc, "conflicts", conflicts_json(op->conflicts));
	if (op->metrics_address)
		cJSON_AddStringToObject(doc, "metrics", op->metrics_address);
	else
		cJSON_AddNullToObject(doc, "metrics");
	return doc;
}

/* ---- text form (pure) ------------------------------------------------------------- */

static const char *str(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double num(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool flag(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static void render_watch(const cJSON *w, FILE *out)
{
	char t1[32], t2[32], label[160];
	double since = num(w, "since_seconds", -1), last = num(w, "last_data_seconds_ago", -1);
	const char *state = str(w, "state", "?"), *scope = str(w, "scope", NULL);

	/* The whole cluster reads as before: "Service:". */
	if (scope && !streq(scope, "all namespaces"))
		snprintf(label, sizeof(label), "%s (%s):", str(w, "resource", str(w, "kind", "?")),
			 scope);
	else
		snprintf(label, sizeof(label), "%s:", str(w, "resource", str(w, "kind", "?")));
	fprintf(out, "  %-15s %s", label, state);
	if (since >= 0 && (streq(state, "watching") || streq(state, "listing")))
		fprintf(out, " for %s", operate_format_seconds(since, t1, sizeof(t1)));
	if (last >= 0)
		fprintf(out, ", last heard %s ago", operate_format_seconds(last, t2, sizeof(t2)));
	else
		fprintf(out, ", never heard from");
	fprintf(out, " (%.0f list%s, %.0f relists, %.0f watch restarts, %.0f stale)\n",
		num(w, "lists", 0), num(w, "lists", 0) == 1 ? "" : "s", num(w, "relists", 0),
		num(w, "watch_restarts", 0), num(w, "stale_reconnects", 0));
}

static void join_strings(const cJSON *arr, char *buf, size_t len);

static void render_scope(const cJSON *scope, FILE *out)
{
	const cJSON *ns = cJSON_GetObjectItemCaseSensitive(scope, "namespaces");
	const char *sel = str(scope, "label_selector", NULL), *dns = str(scope, "dns_service", NULL);
	char names[512];

	if (!scope)
		return;
	join_strings(ns, names, sizeof(names));
	fprintf(out, "  scope: Services of %s%s%s%s%s%s%s\n",
		cJSON_IsArray(ns) ? "namespaces " : "all namespaces", cJSON_IsArray(ns) ? names : "",
		sel ? " with labels '" : "", sel ? sel : "", sel ? "'" : "",
		dns && (cJSON_IsArray(ns) || sel) ? "; always the cluster DNS Service " : "",
		dns && (cJSON_IsArray(ns) || sel) ? dns : "");
}

/* "  Service CIDRs: 10.96.0.0/16 (from ServiceCIDR objects, networking.k8s.io/v1)" */
static void render_service_cidrs(const cJSON *sc, FILE *out)
{
	const char *source = str(sc, "source", NULL), *api = str(sc, "api", NULL);
	char list[512];

	if (!sc)
		return;
	join_strings(cJSON_GetObjectItemCaseSensitive(sc, "cidrs"), list, sizeof(list));
	fprintf(out, "  Service CIDRs: %s (%s%s%s%s)\n", source ? list : "none",
		source ? "from " : "", source ? source : "unallocated ClusterIPs go to the network",
		api ? "; ServiceCIDRs from " : flag(sc, "forbidden") ? "; ServiceCIDRs cannot be read" : "",
		api ? api : "");
}

static void render_api(const cJSON *api, FILE *out)
{
	const cJSON *w, *e, *p = cJSON_GetObjectItemCaseSensitive(api, "last_problem");
	const cJSON *errors = cJSON_GetObjectItemCaseSensitive(api, "errors");
	char t[32];
	bool first = true;

	fprintf(out, "API server:   %s (%s; context %s, user %s): %s\n", str(api, "server", "?"),
		str(api, "kubeconfig", "?"), str(api, "context", "?"), str(api, "user", "?"),
		flag(api, "connected") ? "connected" : "NOT connected");
	fprintf(out, "  endpoints from %s\n", str(api, "endpoints_api", "?"));
	render_scope(cJSON_GetObjectItemCaseSensitive(api, "scope"), out);
	render_service_cidrs(cJSON_GetObjectItemCaseSensitive(api, "service_cidrs"), out);
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(api, "watches"))
		render_watch(w, out);
	fprintf(out, "  API errors:     ");
	cJSON_ArrayForEach(e, errors) {
		fprintf(out, "%s%s%s x%.0f", first ? "" : ", ",
			strspn(e->string, "0123456789") == strlen(e->string) ? "HTTP " : "",
			e->string, e->valuedouble);
		first = false;
	}
	fprintf(out, "%s\n", first ? "none" : "");
	if (p)
		fprintf(out, "  last problem:   %s (%s ago)\n", str(p, "message", "?"),
			operate_format_seconds(num(p, "seconds_ago", -1), t, sizeof(t)));
}

static void render_services(const cJSON *s, FILE *out)
{
	const cJSON *np = cJSON_GetObjectItemCaseSensitive(s, "not_forwarded"), *r;
	bool first = true;

	fprintf(out, "Services:     %.0f known, %.0f proxied (%.0f IPv4, %.0f IPv6); "
		     "%.0f service ports, %.0f endpoints programmed\n",
		num(s, "known", 0), num(s, "proxied", 0), num(s, "ipv4_services", 0),
		num(s, "ipv6_services", 0), num(s, "service_ports", 0), num(s, "endpoints", 0));
	cJSON_ArrayForEach(r, np) {
		const char *text = r->string;

		for (int i = 0; i < _REASON_MAX; i++)
			if (streq(r->string, operate_reason_label(i)))
				text = operate_reason_text(i);
		fprintf(out, "%s%.0f %s", first ? "  not forwarded: " : ", ", r->valuedouble, text);
		first = false;
	}
	if (!first)
		fprintf(out, "\n");
}

/* "  gateway mode: on (this host forwards IPv4, NOT IPv6)" */
static void render_gateway(const cJSON *g, FILE *out)
{
	static const char *const keys[] = { "ipv4_forwarding", "ipv6_forwarding" };
	static const char *const names[] = { "IPv4", "IPv6" };
	const char *sep = " (this host forwards ";

	if (!g)
		return;
	if (!flag(g, "enabled")) {
		fprintf(out, "  gateway mode: off (this host's own connections only)\n");
		return;
	}
	fprintf(out, "  gateway mode: on, also for connections routed through this host");
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(g, keys[i]);

		if (!cJSON_IsBool(v))
			continue;
		fprintf(out, "%s%s%s", sep, cJSON_IsTrue(v) ? "" : "NOT ", names[i]);
		sep = ", ";
	}
	fprintf(out, "%s\n", sep[0] == ',' ? ")" : "");
}

static void render_datapath(const cJSON *d, FILE *out)
{
	const cJSON *last = cJSON_GetObjectItemCaseSensitive(d, "last_sync");
	char t1[32], t2[32];

	fprintf(out, "Datapath:     %.0f service ports, %.0f backends in %.0f groups; %.0f syncs, "
		     "%.0f failed, %.0f self-heal restorations\n",
		num(d, "service_ports", 0), num(d, "backends", 0), num(d, "groups", 0),
		num(d, "syncs", 0), num(d, "sync_failures", 0), num(d, "restorations", 0));
	if (num(last, "seconds_ago", -1) >= 0)
		fprintf(out, "  last sync %s ago, took %s%s%s\n",
			operate_format_seconds(num(last, "seconds_ago", -1), t1, sizeof(t1)),
			operate_format_seconds(num(last, "duration_seconds", -1), t2, sizeof(t2)),
			flag(last, "ok") ? "" : "; FAILING since: ",
			flag(last, "ok") ? "" : str(last, "error", "?"));
	else
		fprintf(out, "  not synced yet%s%s\n", flag(last, "ok") ? "" : "; failing: ",
			flag(last, "ok") ? "" : str(last, "error", "?"));
	render_gateway(cJSON_GetObjectItemCaseSensitive(d, "gateway"), out);
}

static void join_strings(const cJSON *arr, char *buf, size_t len)
{
	const cJSON *v;
	size_t o = 0;

	buf[0] = 0;
	cJSON_ArrayForEach(v, arr)
		if (cJSON_IsString(v) && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", v->valuestring);
}

void operate_render_dns(const cJSON *d, FILE *out)
{
	const char *mode = str(d, "mode", "?");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(d, "last_problem");
	char servers[256], t[32];

	join_strings(cJSON_GetObjectItemCaseSensitive(d, "servers"), servers, sizeof(servers));
	if (streq(mode, "off"))
		fprintf(out, "DNS:          off (the host's resolver is not touched)\n");
	else
		fprintf(out, "DNS:          %s: names in ~%s -> %s%s%s%s%s: %s\n", mode,
			str(d, "domain", "?"), servers[0] ? servers : "(no server known yet)",
			str(d, "service", NULL) ? " (" : "", str(d, "service", ""),
			str(d, "service", NULL) ? ")" : "",
			str(d, "link", NULL) ? " via " RESOLV_LINK_NAME : "",
			flag(d, "configured") ? "in effect" : "NOT in effect");
	if (p)
		fprintf(out, "  last problem:   %s (%s ago)\n", str(p, "message", "?"),
			operate_format_seconds(num(p, "seconds_ago", -1), t, sizeof(t)));
}

int status_render(const cJSON *doc, FILE *out)
{
	const cJSON *health = cJSON_GetObjectItemCaseSensitive(doc, "health"), *w;
	const char *status = str(health, "status", "unknown");
	int n = 0;
	char t[32];

	fprintf(out, "kube-annex %s (pid %.0f), up %s: %s", str(doc, "version", "?"),
		num(doc, "pid", 0), operate_format_seconds(num(doc, "uptime_seconds", -1), t, sizeof(t)),
		status);
	if (!streq(status, "healthy") && !streq(str(health, "reason", "ok"), "ok"))
		fprintf(out, ": %s", str(health, "reason", "?"));
	fprintf(out, "\n");
	render_api(cJSON_GetObjectItemCaseSensitive(doc, "api"), out);
	render_services(cJSON_GetObjectItemCaseSensitive(doc, "services"), out);
	render_datapath(cJSON_GetObjectItemCaseSensitive(doc, "datapath"), out);
	operate_render_dns(cJSON_GetObjectItemCaseSensitive(doc, "dns"), out);
	fprintf(out, "Metrics:      %s\n",
		str(doc, "metrics", NULL) ? str(doc, "metrics", NULL) : "off");
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(health, "warnings")) {
		if (!cJSON_IsString(w))
			continue;
		fprintf(out, "%s%s\n", n++ ? "              " : "Warnings:     ", w->valuestring);
	}
	if (n == 0)
		fprintf(out, "Warnings:     none\n");
	return streq(status, "healthy") ? OPERATE_EXIT_OK : OPERATE_EXIT_DEGRADED;
}
