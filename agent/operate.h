/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Operating the daemon: what it tells the people and programs that watch it.
 *
 *   metrics.c    HTTP on 127.0.0.1:10256 (libmicrohttpd on sd-event):
 *                /healthz, /livez, /metrics (Prometheus text)
 *   control.c    the root-only unix socket /run/kube-annex/control, and
 *                the client side of `kube-annex status` / `explain`
 *   status.c     health, the status document (JSON) and its text form
 *   explain.c    `explain NAME|IP[:PORT]|NAMESPACE/NAME`: document and text
 *   conflicts.c  ClusterIPs against the host's addresses, routes and
 *                nameservers; endpoints the host has no route to
 *   operate.c    glue: the hooks agent/main.c calls, change logs
 *
 * Documents are computed in the daemon as cJSON; the CLI prints them as
 * JSON or renders them as text. The renderers are pure (unit-tested).
 */

#include <stdio.h>
#include <sys/socket.h>

#include "kube/kube.h"
#include "lib/histogram.h"
#include "lib/util.h"

struct agent;
struct cJSON;
struct model;
struct sd_event;

#define OPERATE_DEFAULT_METRICS_ADDRESS "127.0.0.1:10256"
#define OPERATE_DEFAULT_CONTROL_PATH "/run/kube-annex/control"

/* Exit codes of `kube-annex status` and `explain`. */
#define OPERATE_EXIT_OK 0          /* healthy / reachable */
#define OPERATE_EXIT_DEGRADED 1    /* running with problems / not reachable */
#define OPERATE_EXIT_USAGE 2
#define OPERATE_EXIT_NOT_RUNNING 3 /* no daemon answers on the socket */
#define OPERATE_EXIT_UNKNOWN 4     /* no permission, or a garbled answer */

struct operate_options {
	const char *metrics_address; /* "ADDR:PORT" or "off"; NULL: the default */
	const char *control_path;    /* NULL: the default */
};

struct metrics;
struct control;
struct conflicts;

struct operate {
	struct agent *agent;
	char *metrics_address;         /* as served, NULL when off */
	char *control_path;
	struct metrics *metrics;
	struct control *control;
	struct conflicts *conflicts;

	/* syncs */
	struct histogram sync_full;    /* after start, a failure or a restore */
	struct histogram sync_partial;
	bool full_pending;
	uint64_t sync_failures;
	bool sync_failing;             /* the last sync failed */
	char *sync_error;
	uint64_t sync_error_usec;      /* CLOCK_MONOTONIC */
	uint64_t last_sync_took_usec;
	uint64_t last_sync_realtime_usec;
	uint64_t syncs;

	/* what went wrong last (for status) */
	char trouble[256];
	uint64_t trouble_usec;
	char dns_problem[256];
	uint64_t dns_problem_usec;

	/* probes answered, by outcome */
	uint64_t healthz_ok, healthz_fail, livez_ok;

	/* change log: lines per window, then a summary */
	uint64_t log_window_usec;
	unsigned log_lines;
	unsigned log_suppressed;
	/* initial list progress */
	uint64_t list_start_usec, list_progress_usec;
	size_t listed[2]; /* Services, endpoint objects */
};

/* ---- hooks for agent/main.c ---------------------------------------------- */

/* Start the HTTP endpoint, the control socket and conflict checks. Only
 * -ENOMEM fails: an address in use is reported and retried. */
int operate_new(struct agent *a, const struct operate_options *o);
void operate_free(struct agent *a);
/* Parse "ADDR:PORT" | "[ADDR]:PORT" | "off" (pure); -EINVAL. */
int operate_parse_address(const char *s, struct sockaddr_storage *ret, bool *ret_off);
/* `kube-annex status|explain ...`: argv[0] is the verb. Returns the exit code. */
int operate_client_main(int argc, char **argv);
bool operate_is_verb(const char *arg);

void operate_sync_done(struct agent *a, uint64_t start_usec);
void operate_sync_failed(struct agent *a, const char *error);
void operate_full_sync_needed(struct agent *a);
/* Before the model changes: old is the stored Service (or NULL). */
void operate_service_upsert(struct agent *a, const struct kube_service *old,
			    const struct kube_service *svc);
void operate_service_delete(struct agent *a, const char *ns, const char *name);
void operate_endpoints_upsert(struct agent *a);
void operate_trouble(struct agent *a, const char *what);
void operate_dns_report(struct agent *a, int priority, const char *message);

/*
 * Gateway mode needs the host to forward: whether this network namespace
 * forwards family (AF_INET or AF_INET6) read from its sysctl, whose name
 * goes to *ret_sysctl. 1 on, 0 off, -errno when it cannot be read
 * (-ENOENT: no IPv6). Only read, never written.
 */
int operate_forwarding(int family, const char **ret_sysctl);

/* ---- shared by agent/ operate files -------------------------------------- */

/*
 * A log line with structured fields ("KEY=value", NULL-terminated) for the
 * journal: sent with sd_journal_send() when stderr is connected to the
 * journal ($JOURNAL_STREAM), as a plain "<N>message" line otherwise (or
 * when the journal refuses it).
 */
void operate_log(int level, const char *const *fields, const char *fmt, ...) _printf_(3, 4);

/* Why Services are not forwarded by this host, for status and metrics. */
enum operate_reason {
	REASON_EXTERNAL_NAME,
	REASON_HEADLESS,
	REASON_OTHER_PROXY,
	REASON_NO_CLUSTER_IP,
	REASON_ITP_LOCAL,     /* proxied, but its ClusterIP traffic is dropped */
	REASON_NO_ENDPOINTS,  /* proxied, but every port rejects */
	_REASON_MAX,
};
const char *operate_reason_label(enum operate_reason r); /* "external_name", ... */
const char *operate_reason_text(enum operate_reason r);  /* "ExternalName (DNS only)", ... */
/* The reason for a Service, or _REASON_MAX when it is forwarded (no_endpoints
 * is not decided here: it needs the entries). */
enum operate_reason operate_service_reason(const struct kube_service *svc);

struct operate_summary {
	size_t services;                  /* known */
	size_t proxied;                   /* with entries */
	size_t reasons[_REASON_MAX];
	size_t services_by_family[2];     /* proxied with a ClusterIP of the family (v4, v6) */
	size_t ports_by_family[2];        /* committed VIP.proto.port keys */
	size_t endpoints_by_family[2];    /* committed backend elements */
	size_t rejecting_by_family[2];    /* committed keys without endpoints */
};
int operate_summarize(struct agent *a, struct operate_summary *ret);

/* Health: 1 healthy, 0 not (reason written), as /healthz answers. */
int operate_health(struct agent *a, char *reason, size_t len);
/* Warnings that do not make /healthz fail (conflicts, DNS, skipped objects). */
int operate_warnings(struct agent *a, struct cJSON *array);

struct cJSON *status_build(struct agent *a);
/* The "dns" part of status (also in explain) and its text form. */
struct cJSON *operate_dns_json(struct agent *a);
void operate_render_dns(const struct cJSON *d, FILE *out);

/* "340 ms", "4.2 s", "3m 12s", "2h 5m", "3d 4h" (pure). */
const char *operate_format_seconds(double seconds, char *buf, size_t len);

/* Text form of a status document; returns the exit code it implies. */
int status_render(const struct cJSON *doc, FILE *out);

/* explain: the request (query + what the client's resolver said) -> document. */
struct cJSON *explain_build(struct agent *a, const struct cJSON *request);
int explain_render(const struct cJSON *doc, FILE *out);

/* Query forms (pure). */
enum explain_kind {
	EXPLAIN_SERVICE,  /* namespace/name */
	EXPLAIN_ADDRESS,  /* IP or IP:PORT / [IP6]:PORT */
	EXPLAIN_NAME,     /* a DNS name (or a bare Service name) */
};
struct explain_query {
	enum explain_kind kind;
	char ns[254], name[254];  /* EXPLAIN_SERVICE */
	char addr[64];            /* EXPLAIN_ADDRESS: the address text */
	int port;                 /* EXPLAIN_ADDRESS: 0 when not given */
	int protocol;             /* EXPLAIN_ADDRESS: "IP:PORT/udp"; 0 any */
};
int explain_parse_query(const char *s, struct explain_query *ret);

int metrics_new(struct agent *a, const char *address, struct metrics **ret);
struct metrics *metrics_free(struct metrics *m);
/* The Prometheus text of /metrics, allocated. */
int metrics_render(struct agent *a, char **ret, size_t *ret_len);

int control_new(struct agent *a, const char *path, struct control **ret);
struct control *control_free(struct control *c);

/* Conflicts: checked again shortly after Services or the host's addresses
 * and routes change. */
int conflicts_new(struct agent *a, struct conflicts **ret);
struct conflicts *conflicts_free(struct conflicts *c);
void conflicts_schedule(struct conflicts *c);
/* Current conflicts as a JSON array of {kind, address, service, message}. */
struct cJSON *conflicts_json(const struct conflicts *c);
/* Number of current conflicts of a kind (CONFLICT_KINDS), for metrics. */
size_t conflicts_count(const struct conflicts *c, const char *kind);
/* Conflicts about addr (a route conflict: addr inside the route), as a JSON
 * array (possibly empty). */
struct cJSON *conflicts_for_address(const struct conflicts *c, const struct kube_ip *addr);
/* Why the last check could not look at everything, or NULL. */
const char *conflicts_note(const struct conflicts *c);
size_t conflicts_more(const struct conflicts *c);
/* How the kernel routes addr from this host (a route lookup):
 * "via 10.99.0.254 dev eth0", "dev eth0", "local", or why not
 * ("no route: Network is unreachable", "unreachable route"). 1 when it is
 * routed, 0 when not, -errno when the lookup failed. */
int conflicts_route_describe(const struct kube_ip *addr, char *buf, size_t len);

/* ---- conflicts, pure part (unit-tested) ----------------------------------- */

#define CONFLICT_KINDS "host_address", "route", "nameserver", "unroutable_endpoint"
#define CONFLICTS_MAX 256u        /* kept; the rest are counted */
#define CONFLICTS_MAX_ROUTES 65536u

struct host_address {
	struct kube_ip addr;
	unsigned prefixlen;
	char ifname[16];
};

struct host_route {
	struct kube_ip dst;       /* masked to prefixlen */
	unsigned prefixlen;
	unsigned type;            /* RTN_UNICAST, RTN_UNREACHABLE, ... */
	char ifname[16];          /* "" when none (multipath, unreachable) */
	struct kube_ip gateway;   /* family 0 when none */
};

struct route_table;
int route_table_new(const struct host_route *routes, size_t n, struct route_table **ret);
struct route_table *route_table_free(struct route_table *t);
/* Longest prefix match, or NULL when no route covers addr. */
const struct host_route *route_table_lookup(const struct route_table *t,
					    const struct kube_ip *addr);
bool ip_in_prefix(const struct kube_ip *addr, const struct kube_ip *prefix, unsigned len);
/* "10.96.0.0/16 dev tun0", "unreachable 10.244.0.13/32", "default via ..." */
void host_route_format(const struct host_route *r, char *buf, size_t len);

struct host_view {
	const struct host_address *addrs;
	size_t n_addrs;
	const struct route_table *routes; /* main table; NULL: not checked */
	const struct kube_ip *nameservers; /* the host's own */
	size_t n_nameservers;
	const struct host_address *service_cidrs; /* --service-cidr (ifname unused) */
	size_t n_service_cidrs;
};

/* One conflict. A route conflict is one per route: addr/prefixlen is the
 * route, count the ClusterIPs it covers, service the first of them. */
struct conflict {
	char kind[24];
	struct kube_ip addr;
	unsigned prefixlen;
	size_t count;
	char service[KUBE_MAX_NAME_LEN * 2 + 2];
	char examples[256];
	char route[160];
	char cidr[64];            /* route: the Service CIDR it overlaps, "" when none */
	char message[1024];
};

/* Every conflict between the model's Services and the host, at most
 * CONFLICTS_MAX in *ret (allocated), the number left out in *ret_more. */
int conflicts_compute(const struct model *m, const struct host_view *h, struct conflict **ret,
		      size_t *ret_n, size_t *ret_more);

/* Prometheus text helpers (pure). */
void prom_header(FILE *f, const char *name, const char *type, const char *help);
void prom_histogram(FILE *f, const char *name, const char *labels, const struct histogram *h);
/* label value escaping (\, ", newline) into buf; returns buf. */
const char *prom_escape(const char *s, char *buf, size_t len);
