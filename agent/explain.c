/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * `kube-annex explain QUERY`: why this host can or cannot reach something.
 *
 *   NAMESPACE/NAME        a Service: its addresses and ports, the entries
 *                         programmed for it (desired by the model and
 *                         committed in the kernel), its endpoints with their
 *                         conditions and which are in use, affinity, and
 *                         when it is not reachable, why;
 *   IP, IP:PORT,          the Service(s) owning that address (only that
 *   [IP6]:PORT[/udp]      port), or what the address is to this host;
 *   a DNS name            what the host's resolver returned (the CLI asks
 *                         getaddrinfo(), so the daemon's loop never blocks
 *                         on DNS) and through which path: kube-annex0 and
 *                         systemd-resolved, resolv.conf (direct), or none;
 *                         then the Service the name belongs to.
 *
 * The daemon builds a JSON document; explain_render() prints it (pure).
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <strings.h>
#include <inttypes.h>
#include <netinet/in.h>

#include "agent/agent.h"
#include "agent/operate.h"
#include "lib/log.h"

#define MAX_LISTED 100u       /* endpoints, entries, backends listed */
#define MAX_ROUTE_LOOKUPS 32u /* endpoints whose route is looked up */

static const char *s_(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double n_(const cJSON *o, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static bool b_(const cJSON *o, const char *key)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* ---- the query (pure) ---------------------------------------------------- */

static bool parse_port(const char *s, int *port, int *protocol)
{
	char *end;
	unsigned long p;

	errno = 0;
	p = strtoul(s, &end, 10);
	if (errno || end == s || p == 0 || p > 65535 || !isdigit((unsigned char)s[0]))
		return false;
	*protocol = 0;
	if (*end == '/') {
		int proto = kube_protocol_parse(end + 1);

		if (proto < 0) {
			char up[8] = "";

			for (size_t i = 0; end[1 + i] && i < sizeof(up) - 1; i++)
				up[i] = (char)toupper((unsigned char)end[1 + i]);
			proto = kube_protocol_parse(up);
		}
		if (proto < 0)
			return false;
		*protocol = proto;
	} else if (*end) {
		return false;
	}
	*port = (int)p;
	return true;
}

static bool is_address(const char *s, size_t len, char *out, size_t out_len)
{
	struct kube_ip ip;

	if (len == 0 || len >= out_len)
		return false;
	memcpy(out, s, len);
	out[len] = 0;
	return kube_ip_parse(out, &ip) >= 0;
}

int explain_parse_query(const char *s, struct explain_query *ret)
{
	const char *slash, *colon;
	size_t len;

	*ret = (struct explain_query){};
	if (!s || !*s || strlen(s) > 253 + 1 + 253)
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return -EINVAL;
	/* [v6]:port, v6, v4, v4:port */
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || !is_address(s + 1, (size_t)(close - s - 1), ret->addr, sizeof(ret->addr)))
			return -EINVAL;
		if (close[1] == 0) {
			ret->kind = EXPLAIN_ADDRESS;
			return 0;
		}
		if (close[1] != ':' || !parse_port(close + 2, &ret->port, &ret->protocol))
			return -EINVAL;
		ret->kind = EXPLAIN_ADDRESS;
		return 0;
	}
	if (is_address(s, strlen(s), ret->addr, sizeof(ret->addr))) {
		ret->kind = EXPLAIN_ADDRESS;
		return 0;
	}
	colon = strrchr(s, ':');
	if (colon && strchr(s, ':') == colon && is_address(s, (size_t)(colon - s), ret->addr,
							    sizeof(ret->addr))) {
		if (!parse_port(colon + 1, &ret->port, &ret->protocol))
			return -EINVAL;
		ret->kind = EXPLAIN_ADDRESS;
		return 0;
	}
	ret->addr[0] = 0;
	slash = strchr(s, '/');
	if (slash) {
		len = (size_t)(slash - s);
		if (len == 0 || len >= sizeof(ret->ns) || strchr(slash + 1, '/') || !slash[1] ||
		    strlen(slash + 1) >= sizeof(ret->name) || strchr(s, ':'))
			return -EINVAL;
		memcpy(ret->ns, s, len);
		ret->ns[len] = 0;
		snprintf(ret->name, sizeof(ret->name), "%s", slash + 1);
		ret->kind = EXPLAIN_SERVICE;
		return 0;
	}
	if (strchr(s, ':') || strlen(s) >= sizeof(ret->name))
		return -EINVAL;
	snprintf(ret->name, sizeof(ret->name), "%s", s);
	ret->kind = EXPLAIN_NAME;
	return 0;
}

/* ---- a Service ------------------------------------------------------------ */

static const char *type_name(enum kube_service_type t)
{
	switch (t) {
	case KUBE_SERVICE_NODE_PORT:
		return "NodePort";
	case KUBE_SERVICE_LOAD_BALANCER:
		return "LoadBalancer";
	case KUBE_SERVICE_EXTERNAL_NAME:
		return "ExternalName";
	default:
		return "ClusterIP";
	}
}

static const char *verdict_name(enum model_verdict v, size_t n_backends)
{
	if (v == MODEL_DROP)
		return "drop";
	if (v == MODEL_FORWARD && n_backends > 0)
		return "forward";
	return "reject";
}

static char *backend_text(const struct model_backend *b, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	kube_ip_format(&b->addr, a, sizeof(a));
	snprintf(buf, len, b->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, b->port);
	return buf;
}

static cJSON *ips_json(const struct kube_ip *ips, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < n && arr; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(kube_ip_format(&ips[i], buf, sizeof(buf))));
	return arr;
}

static cJSON *backends_json(const struct model_entry *e)
{
	cJSON *arr = cJSON_CreateArray();
	char buf[INET6_ADDRSTRLEN + 8];

	for (size_t i = 0; arr && i < e->n_backends && i < MAX_LISTED; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(backend_text(&e->backends[i], buf,
									   sizeof(buf))));
	return arr;
}

struct filter {
	bool any_vip;
	struct kube_ip vip;
	int port, protocol;
};

static bool filter_match(const struct filter *f, const struct model_key *k)
{
	if (!f->any_vip && !kube_ip_equal(&f->vip, &k->vip))
		return false;
	if (f->port && f->port != k->port)
		return false;
	return !f->protocol || f->protocol == k->protocol;
}

struct committed_find {
	const struct model_key *key;
	cJSON *out;
	bool found;
	bool forwards;
	bool pinned;
};

static int find_committed(const struct model_key *k, const struct model_entry *e, void *userdata)
{
	struct committed_find *c = userdata;

	if (k->port != c->key->port || k->protocol != c->key->protocol ||
	    !kube_ip_equal(&k->vip, &c->key->vip))
		return 0;
	c->found = true;
	c->forwards = e->verdict == MODEL_FORWARD && e->n_backends > 0;
	c->pinned = c->forwards && e->affinity_timeout_sec > 0;
	cJSON_AddStringToObject(c->out, "verdict", verdict_name(e->verdict, e->n_backends));
	cJSON_AddStringToObject(c->out, "comment", e->comment);
	cJSON_AddItemToObject(c->out, "backends", backends_json(e));
	cJSON_AddNumberToObject(c->out, "n_backends", (double)e->n_backends);
	return -ECANCELED; /* found: stop */
}

struct service_walk {
	struct agent *agent;
	const struct filter *filter;
	cJSON *entries;
	size_t n_entries;
	size_t forwarding;   /* entries that forward, as committed */
	size_t rejecting;    /* entries that reject, as committed */
	size_t dropping;
	size_t unprogrammed; /* desired but not (yet) committed as desired */
	size_t pinned;       /* forwarding entries committed with session affinity */
	/* backends in use (committed), to mark endpoints */
	struct model_backend *in_use;
	size_t n_in_use, cap_in_use;
};

static void note_in_use(struct service_walk *w, const cJSON *backends)
{
	const cJSON *b;

	cJSON_ArrayForEach(b, backends) {
		/* Parse back "addr:port" / "[addr]:port" (our own text). */
		char addr[INET6_ADDRSTRLEN + 2];
		const char *s = b->valuestring, *colon = strrchr(s, ':');
		struct model_backend mb = {};
		size_t len;

		if (!colon)
			continue;
		len = (size_t)(colon - s);
		if (s[0] == '[' && len >= 2) {
			s++;
			len -= 2;
		}
		if (len >= sizeof(addr))
			continue;
		memcpy(addr, s, len);
		addr[len] = 0;
		if (kube_ip_parse(addr, &mb.addr) < 0)
			continue;
		mb.port = (uint16_t)atoi(colon + 1);
		if (w->n_in_use == w->cap_in_use) {
			size_t cap = w->cap_in_use ? w->cap_in_use * 2 : 16;
			struct model_backend *v = reallocarray(w->in_use, cap, sizeof(*v));

			if (!v)
				return;
			w->in_use = v;
			w->cap_in_use = cap;
		}
		w->in_use[w->n_in_use++] = mb;
	}
}

static bool same_backends(const cJSON *a, const struct model_entry *e)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t i = 0;
	const cJSON *b;

	if (cJSON_GetArraySize(a) != (int)(e->n_backends < MAX_LISTED ? e->n_backends : MAX_LISTED))
		return false;
	/* committed slots are in slot order, desired sorted: compare as sets */
	for (i = 0; i < e->n_backends && i < MAX_LISTED; i++) {
		bool found = false;

		backend_text(&e->backends[i], buf, sizeof(buf));
		cJSON_ArrayForEach(b, a)
			found = found || streq(b->valuestring, buf);
		if (!found)
			return false;
	}
	return true;
}

static int entry_walk(const struct model_key *k, const struct model_entry *e, void *userdata)
{
	struct service_walk *w = userdata;
	struct committed_find cf = { .key = k };
	cJSON *o, *programmed;
	char a[INET6_ADDRSTRLEN];

	if (!filter_match(w->filter, k))
		return 0;
	w->n_entries++;
	if (w->n_entries > MAX_LISTED)
		return 0;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	cJSON_AddItemToArray(w->entries, o);
	cJSON_AddStringToObject(o, "address", kube_ip_format(&k->vip, a, sizeof(a)));
	cJSON_AddStringToObject(o, "protocol", kube_protocol_name(k->protocol));
	cJSON_AddNumberToObject(o, "port", k->port);
	cJSON_AddStringToObject(o, "name", e->comment);
	cJSON_AddStringToObject(o, "verdict", verdict_name(e->verdict, e->n_backends));
	cJSON_AddItemToObject(o, "backends", backends_json(e));
	programmed = cJSON_AddObjectToObject(o, "programmed");
	cf.out = programmed;
	(void)nft_foreach_committed(w->agent->nft, find_committed, &cf);
	if (!cf.found) {
		cJSON_AddStringToObject(programmed, "verdict", "none");
		w->unprogrammed++;
	} else {
		const char *v = s_(programmed, "verdict", "");
		bool same = streq(v, verdict_name(e->verdict, e->n_backends)) &&
			    same_backends(cJSON_GetObjectItemCaseSensitive(programmed, "backends"), e);

		cJSON_AddBoolToObject(o, "in_sync", same);
		if (!same)
			w->unprogrammed++;
		note_in_use(w, cJSON_GetObjectItemCaseSensitive(programmed, "backends"));
		if (cf.pinned)
			w->pinned++;
		if (cf.forwards)
			w->forwarding++;
		else if (streq(v, "drop"))
			w->dropping++;
		else
			w->rejecting++;
	}
	return 0;
}

struct slice_walk {
	struct service_walk *w;
	cJSON *endpoints;
	size_t n;
	size_t ready, serving_terminating, not_ready;
	size_t unroutable_in_use, routed_in_use, routes_looked_up;
};

static bool in_use(const struct service_walk *w, const struct kube_ip *addr, uint16_t port)
{
	for (size_t i = 0; i < w->n_in_use; i++)
		if (kube_ip_equal(&w->in_use[i].addr, addr) && (!port || w->in_use[i].port == port))
			return true;
	return false;
}

static int slice_walk(const struct kube_endpoint_slice *sl, void *userdata)
{
	struct slice_walk *s = userdata;
	char a[INET6_ADDRSTRLEN], route[160], slice[2 * KUBE_MAX_NAME_LEN + 2];

	snprintf(slice, sizeof(slice), "%s/%s", sl->namespace, sl->name);
	for (size_t i = 0; i < sl->n_endpoints; i++) {
		const struct kube_endpoint *ep = &sl->endpoints[i];
		bool used = false;
		cJSON *o, *ports;

		if (ep->ready)
			s->ready++;
		else if (ep->serving && ep->terminating)
			s->serving_terminating++;
		else
			s->not_ready++;
		for (size_t p = 0; p < sl->n_ports; p++)
			used = used || in_use(s->w, &ep->addr, sl->ports[p].port);
		if (++s->n > MAX_LISTED)
			continue;
		o = cJSON_CreateObject();
		if (!o)
			return -ENOMEM;
		cJSON_AddItemToArray(s->endpoints, o);
		cJSON_AddStringToObject(o, "address", kube_ip_format(&ep->addr, a, sizeof(a)));
		cJSON_AddStringToObject(o, "slice", slice);
		ports = cJSON_AddArrayToObject(o, "ports");
		for (size_t p = 0; p < sl->n_ports && ports; p++) {
			char text[KUBE_MAX_NAME_LEN + 24];

			snprintf(text, sizeof(text), "%s%s%u/%s", sl->ports[p].name,
				 sl->ports[p].name[0] ? " " : "", sl->ports[p].port,
				 kube_protocol_name(sl->ports[p].protocol));
			cJSON_AddItemToArray(ports, cJSON_CreateString(text));
		}
		cJSON_AddBoolToObject(o, "ready", ep->ready);
		cJSON_AddBoolToObject(o, "serving", ep->serving);
		cJSON_AddBoolToObject(o, "terminating", ep->terminating);
		if (ep->node_name)
			cJSON_AddStringToObject(o, "node", ep->node_name);
		if (ep->zone)
			cJSON_AddStringToObject(o, "zone", ep->zone);
		if (ep->n_hint_zones) {
			cJSON *h = cJSON_AddArrayToObject(o, "hints");

			for (size_t z = 0; z < ep->n_hint_zones && h; z++)
				cJSON_AddItemToArray(h, cJSON_CreateString(ep->hint_zones[z]));
		}
		cJSON_AddBoolToObject(o, "in_use", used);
		if (s->routes_looked_up < MAX_ROUTE_LOOKUPS) {
			int r = conflicts_route_describe(&ep->addr, route, sizeof(route));

			s->routes_looked_up++;
			cJSON_AddStringToObject(o, "route", route);
			cJSON_AddBoolToObject(o, "routed", r > 0);
			if (r == 0 && used)
				s->unroutable_in_use++;
			else if (r > 0 && used)
				s->routed_in_use++;
		}
	}
	return 0;
}

static void add_reason(cJSON *reasons, const char *fmt, ...) _printf_(2, 3);

static void add_reason(cJSON *reasons, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cJSON_AddItemToArray(reasons, cJSON_CreateString(buf));
}

static void ports_text(const struct kube_service *svc, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (size_t i = 0; i < svc->n_ports && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%u/%s", i ? ", " : "", svc->ports[i].port,
				      kube_protocol_name(svc->ports[i].protocol));
}

static cJSON *service_head(const struct kube_service *svc)
{
	cJSON *o = cJSON_CreateObject(), *ports, *aff;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "kind", "service");
	cJSON_AddStringToObject(o, "namespace", svc->namespace);
	cJSON_AddStringToObject(o, "name", svc->name);
	cJSON_AddBoolToObject(o, "found", true);
	cJSON_AddStringToObject(o, "type", type_name(svc->type));
	if (svc->headless || svc->headless_label)
		cJSON_AddBoolToObject(o, "headless", true);
	cJSON_AddItemToObject(o, "cluster_ips", ips_json(svc->cluster_ips, svc->n_cluster_ips));
	if (svc->n_external_ips)
		cJSON_AddItemToObject(o, "external_ips", ips_json(svc->external_ips, svc->n_external_ips));
	if (svc->n_lb_ips)
		cJSON_AddItemToObject(o, "load_balancer_ips", ips_json(svc->lb_ips, svc->n_lb_ips));
	if (svc->external_name)
		cJSON_AddStringToObject(o, "external_name", svc->external_name);
	ports = cJSON_AddArrayToObject(o, "ports");
	for (size_t i = 0; i < svc->n_ports && ports; i++) {
		const struct kube_service_port *p = &svc->ports[i];
		cJSON *po = cJSON_CreateObject();

		if (!po)
			break;
		cJSON_AddItemToArray(ports, po);
		cJSON_AddStringToObject(po, "name", p->name);
		cJSON_AddStringToObject(po, "protocol", kube_protocol_name(p->protocol));
		cJSON_AddNumberToObject(po, "port", p->port);
		if (p->target_port)
			cJSON_AddStringToObject(po, "target_port", p->target_port);
	}
	aff = cJSON_AddObjectToObject(o, "session_affinity");
	cJSON_AddStringToObject(aff, "type", svc->affinity_client_ip ? "ClientIP" : "None");
	if (svc->affinity_client_ip) {
		cJSON_AddNumberToObject(aff, "timeout_seconds", svc->affinity_timeout_sec);
	}
	cJSON_AddStringToObject(o, "internal_traffic_policy",
				svc->internal_traffic_local ? "Local" : "Cluster");
	if (svc->proxy_name)
		cJSON_AddStringToObject(o, "service_proxy_name", svc->proxy_name);
	return o;
}

static cJSON *explain_service(struct agent *a, const struct kube_service *svc,
			      const struct filter *f)
{
	struct service_walk w = { .agent = a, .filter = f };
	struct slice_walk sw = { .w = &w };
	enum operate_reason why = operate_service_reason(svc);
	cJSON *o = service_head(svc), *reasons, *conflicts;
	char ports[512];
	int r;

	if (!o)
		return NULL;
	/* Who the entries serve: this host, and in gateway mode the machines
	 * that route through it. */
	cJSON_AddBoolToObject(o, "gateway", nft_get_gateway(a->nft));
	w.entries = cJSON_AddArrayToObject(o, "entries");
	r = model_service_entries(a->model, svc->namespace, svc->name, entry_walk, &w);
	if (w.n_entries > MAX_LISTED)
		cJSON_AddNumberToObject(o, "entries_not_listed", (double)(w.n_entries - MAX_LISTED));
	sw.endpoints = cJSON_AddArrayToObject(o, "endpoints");
	if (r >= 0)
		r = model_service_slices(a->model, svc->namespace, svc->name, slice_walk, &sw);
	if (sw.n > MAX_LISTED)
		cJSON_AddNumberToObject(o, "endpoints_not_listed", (double)(sw.n - MAX_LISTED));
	cJSON_AddNumberToObject(o, "endpoints_ready", (double)sw.ready);
	cJSON_AddNumberToObject(o, "endpoints_serving_terminating", (double)sw.serving_terminating);
	cJSON_AddNumberToObject(o, "endpoints_not_ready", (double)sw.not_ready);
	free(w.in_use);

	conflicts = cJSON_AddArrayToObject(o, "conflicts");
	for (size_t i = 0; i < svc->n_cluster_ips + svc->n_external_ips + svc->n_lb_ips; i++) {
		const struct kube_ip *ip = i < svc->n_cluster_ips ? &svc->cluster_ips[i] :
					   i < svc->n_cluster_ips + svc->n_external_ips ?
								    &svc->external_ips[i - svc->n_cluster_ips] :
								    &svc->lb_ips[i - svc->n_cluster_ips - svc->n_external_ips];
		cJSON *c = conflicts_for_address(a->operate->conflicts, ip), *x;

		while (c && (x = cJSON_DetachItemFromArray(c, 0)))
			cJSON_AddItemToArray(conflicts, x);
		cJSON_Delete(c);
	}

	reasons = cJSON_AddArrayToObject(o, "reasons");
	if (r < 0)
		add_reason(reasons, "could not be examined: %s", strerror(-r));
	else if (why != _REASON_MAX && why != REASON_ITP_LOCAL) {
		cJSON_AddStringToObject(o, "not_forwarded", operate_reason_label(why));
		add_reason(reasons, "not proxied: %s", model_service_skip_reason(svc));
		if (why == REASON_EXTERNAL_NAME)
			add_reason(reasons, "DNS answers with a CNAME to %s; connections go to that "
					    "name's addresses, not through kube-annex",
				   svc->external_name ? svc->external_name : "(none)");
		else if (why == REASON_HEADLESS)
			add_reason(reasons, "DNS returns the endpoints' own addresses; clients "
					    "connect to them directly (see their routes below)");
	} else if (f->port && w.n_entries == 0) {
		ports_text(svc, ports, sizeof(ports));
		add_reason(reasons, "port %d%s%s is not a port of this Service (%s): connections "
				    "to it are rejected",
			   f->port, f->protocol ? "/" : "", f->protocol ? kube_protocol_name(f->protocol) : "",
			   ports);
	} else if (w.n_entries == 0) {
		add_reason(reasons, "no entries: the Service has no ports");
	} else {
		if (w.dropping)
			add_reason(reasons, "%s", model_service_note(svc));
		if (w.rejecting)
			add_reason(reasons, "%zu of %zu service ports have no usable endpoint "
					    "(%zu ready, %zu serving while terminating, %zu not ready): "
					    "connections to them are rejected at once",
				   w.rejecting, w.n_entries, sw.ready, sw.serving_terminating,
				   sw.not_ready);
		if (w.unprogrammed)
			add_reason(reasons, "%zu service ports are not (yet) programmed as desired: "
					    "the next sync does it, or the datapath refused them (see "
					    "the log)",
				   w.unprogrammed);
		if (w.forwarding && sw.unroutable_in_use)
			add_reason(reasons, "%zu of the endpoints in use %s no route from this host: "
					    "connections sent there fail%s",
				   sw.unroutable_in_use, sw.unroutable_in_use == 1 ? "has" : "have",
				   sw.routed_in_use ? " (the others work)" : "");
	}
	cJSON_AddBoolToObject(o, "reachable", r >= 0 && w.forwarding > 0 &&
					      w.forwarding == w.n_entries &&
					      (sw.routed_in_use > 0 || !sw.unroutable_in_use));
	if (svc->affinity_client_ip) {
		/* Pinned in the datapath for every forwarding port, or not (more
		 * endpoints than the affinity layout takes: see the log). */
		bool honoured = w.forwarding > 0 && w.pinned == w.forwarding;

		cJSON_AddBoolToObject(cJSON_GetObjectItemCaseSensitive(o, "session_affinity"),
				      "honoured", honoured);
		if (w.forwarding && !honoured)
			cJSON_AddStringToObject(o, "note", "sessionAffinity ClientIP is not applied to "
							   "every port: those pick an endpoint per "
							   "connection");
	}
	return o;
}

static cJSON *service_not_found(struct agent *a, const char *ns, const char *name)
{
	const struct kube_scope *scope = kube_client_scope(a->client);
	cJSON *o = cJSON_CreateObject(), *reasons;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "kind", "service");
	cJSON_AddStringToObject(o, "namespace", ns);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddBoolToObject(o, "found", false);
	cJSON_AddBoolToObject(o, "reachable", false);
	reasons = cJSON_AddArrayToObject(o, "reasons");
	switch (kube_scope_service(scope, ns, name)) {
	case KUBE_SCOPE_OUT_NAMESPACE:
		cJSON_AddBoolToObject(o, "imported", false);
		add_reason(reasons, "Service %s/%s is not imported: namespace %s is not among "
				    "the namespaces kube-annex watches (--namespaces %s)",
			   ns, name, ns, scope->namespaces);
		break;
	case KUBE_SCOPE_IF_SELECTED:
		add_reason(reasons, "no Service %s/%s is known to kube-annex: only Services whose "
				    "labels match --label-selector '%s' are imported (it does not "
				    "match, or does not exist: a typo, another cluster, or not "
				    "listed yet)",
			   ns, name, scope->label_selector);
		break;
	default:
		add_reason(reasons, "no Service %s/%s is known to kube-annex (a typo, another "
				    "cluster, or not listed yet)",
			   ns, name);
		break;
	}
	return o;
}

/* ---- an address ------------------------------------------------------------ */

struct vip_walk {
	const struct kube_ip *addr;
	const struct kube_service *found[8];
	size_t n;
	/* endpoints with that address */
	struct agent *agent;
	cJSON *endpoint_of;
};

static bool has_ip(const struct kube_ip *v, size_t n, const struct kube_ip *ip)
{
	for (size_t i = 0; i < n; i++)
		if (kube_ip_equal(&v[i], ip))
			return true;
	return false;
}

static int endpoint_of(const struct kube_endpoint_slice *sl, void *userdata)
{
	struct vip_walk *v = userdata;
	char key[2 * KUBE_MAX_NAME_LEN + 2];

	for (size_t i = 0; i < sl->n_endpoints; i++)
		if (kube_ip_equal(&sl->endpoints[i].addr, v->addr)) {
			snprintf(key, sizeof(key), "%s/%s", sl->namespace,
				 sl->service_name ? sl->service_name : "?");
			if (cJSON_GetArraySize(v->endpoint_of) < (int)MAX_LISTED)
				cJSON_AddItemToArray(v->endpoint_of, cJSON_CreateString(key));
			return -ECANCELED;
		}
	return 0;
}

static int vip_walk(const struct kube_service *svc, void *userdata)
{
	struct vip_walk *v = userdata;

	if ((has_ip(svc->cluster_ips, svc->n_cluster_ips, v->addr) ||
	     has_ip(svc->external_ips, svc->n_external_ips, v->addr) ||
	     has_ip(svc->lb_ips, svc->n_lb_ips, v->addr)) &&
	    v->n < ARRAY_SIZE(v->found))
		v->found[v->n++] = svc;
	if (v->endpoint_of)
		(void)model_service_slices(v->agent->model, svc->namespace, svc->name, endpoint_of, v);
	return 0;
}

static cJSON *explain_address(struct agent *a, const struct explain_query *q)
{
	struct kube_ip ip;
	struct vip_walk v = { .addr = &ip, .agent = a };
	struct filter f = { .port = q->port, .protocol = q->protocol };
	cJSON *o = cJSON_CreateObject(), *services, *reasons;
	struct kube_cidr cidrs[NFT_MAX_SERVICE_CIDRS];
	size_t n_cidrs;
	char route[160];
	int routed;

	if (!o || kube_ip_parse(q->addr, &ip) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	f.vip = ip;
	cJSON_AddStringToObject(o, "kind", "address");
	cJSON_AddStringToObject(o, "address", q->addr);
	if (q->port)
		cJSON_AddNumberToObject(o, "port", q->port);
	if (q->protocol)
		cJSON_AddStringToObject(o, "protocol", kube_protocol_name(q->protocol));
	v.endpoint_of = cJSON_AddArrayToObject(o, "endpoint_of");
	(void)model_foreach_service(a->model, vip_walk, &v);
	services = cJSON_AddArrayToObject(o, "services");
	reasons = cJSON_AddArrayToObject(o, "reasons");
	if (v.n > 0) {
		bool reachable = true;

		for (size_t i = 0; i < v.n; i++) {
			cJSON *s = explain_service(a, v.found[i], &f);

			reachable = reachable && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "reachable"));
			cJSON_AddItemToArray(services, s);
		}
		cJSON_AddBoolToObject(o, "reachable", reachable);
		return o;
	}
	n_cidrs = nft_get_service_cidrs(a->nft, cidrs);
	for (size_t i = 0; i < n_cidrs; i++) {
		char c[INET6_ADDRSTRLEN];

		if (!ip_in_prefix(&ip, &cidrs[i].addr, cidrs[i].prefix))
			continue;
		cJSON_AddStringToObject(o, "service_cidr", kube_ip_format(&cidrs[i].addr, c, sizeof(c)));
		add_reason(reasons, "%s is inside the Service CIDR %s/%u, but no Service has it: new "
				    "connections to it are dropped (as kube-proxy does)",
			   q->addr, c, cidrs[i].prefix);
		cJSON_AddBoolToObject(o, "reachable", false);
		return o;
	}
	routed = conflicts_route_describe(&ip, route, sizeof(route));
	cJSON_AddStringToObject(o, "route", route);
	cJSON_AddItemToObject(o, "conflicts", conflicts_for_address(a->operate->conflicts, &ip));
	add_reason(reasons, "%s is not the address of any Service kube-annex knows: kube-annex does "
			    "not touch traffic to it; the host routes it %s",
		   q->addr, route);
	cJSON_AddBoolToObject(o, "reachable", routed > 0);
	return o;
}

/* ---- a DNS name ------------------------------------------------------------ */

/* "web.shop.svc.cluster.local" / "web.shop.svc" / "web.shop" -> shop/web */
static bool service_of_name(const char *name, const char *domain, char *ns, size_t ns_len,
			    char *svc, size_t svc_len)
{
	char n[256];
	size_t len = strlen(name), dlen = domain ? strlen(domain) : 0;
	char *dot1, *dot2;

	if (len == 0 || len >= sizeof(n))
		return false;
	for (size_t i = 0; i <= len; i++)
		n[i] = (char)tolower((unsigned char)name[i]);
	if (n[len - 1] == '.')
		n[--len] = 0;
	if (dlen && len > dlen + 1 && n[len - dlen - 1] == '.' && streq(n + len - dlen, domain)) {
		len -= dlen + 1;
		n[len] = 0;
	}
	if (len > 4 && streq(n + len - 4, ".svc"))
		n[len - 4] = 0;
	dot1 = strchr(n, '.');
	if (!dot1)
		return false;
	*dot1 = 0;
	dot2 = strchr(dot1 + 1, '.');
	if (dot2 || !dot1[1])
		return false;
	if (strlen(n) >= svc_len || strlen(dot1 + 1) >= ns_len)
		return false;
	memcpy(svc, n, strlen(n) + 1);
	memcpy(ns, dot1 + 1, strlen(dot1 + 1) + 1);
	return true;
}

static bool in_domain(const char *name, const char *domain)
{
	size_t len = strlen(name), dlen = domain ? strlen(domain) : 0;

	if (len && name[len - 1] == '.')
		len--;
	if (!dlen || len < dlen)
		return false;
	return strncasecmp(name + len - dlen, domain, dlen) == 0 &&
	       (len == dlen || name[len - dlen - 1] == '.');
}

static const char *dns_path(struct agent *a, bool cluster_name, char *buf, size_t len,
			    bool *ret_path)
{
	struct resolv_status rs;
	char servers[256] = "", addr[INET6_ADDRSTRLEN];
	size_t o = 0;

	resolv_get_status(a->resolv, &rs);
	for (size_t i = 0; i < rs.n_servers && o < sizeof(servers); i++)
		o += (size_t)snprintf(servers + o, sizeof(servers) - o, "%s%s", i ? ", " : "",
				      kube_ip_format(&rs.servers[i], addr, sizeof(addr)));
	*ret_path = false;
	switch (rs.mode) {
	case RESOLV_MODE_RESOLVED:
		if (!cluster_name) {
			snprintf(buf, len, "not in ~%s: systemd-resolved answers it through the "
					   "host's own DNS, as before kube-annex",
				 rs.domain);
			return "host";
		}
		*ret_path = rs.configured;
		snprintf(buf, len, "systemd-resolved sends names in ~%s to link %s, whose DNS "
				   "server is the cluster DNS %s%s%s",
			 rs.domain, RESOLV_LINK_NAME, servers[0] ? servers : "(not known yet)",
			 rs.configured ? "" : " -- NOT in effect now",
			 rs.configured ? " (DNATed by kube-annex like any ClusterIP)" : "");
		return "resolved";
	case RESOLV_MODE_NETWORKMANAGER:
		if (!cluster_name) {
			snprintf(buf, len, "not in %s: NetworkManager's dnsmasq answers it through the "
					   "host's own DNS, as before kube-annex",
				 rs.domain);
			return "host";
		}
		*ret_path = rs.configured;
		snprintf(buf, len, "NetworkManager's dnsmasq sends names in %s to the cluster DNS %s "
				   "(server=/%s/...)%s",
			 rs.domain, servers[0] ? servers : "(not known yet)", rs.domain,
			 rs.configured ? "" : " -- NOT in effect now");
		return "networkmanager";
	case RESOLV_MODE_DIRECT:
		*ret_path = rs.configured;
		snprintf(buf, len, "%s (written by kube-annex) asks the cluster DNS %s first, then "
				   "the host's own nameservers%s",
			 RESOLV_CONF_PATH, servers[0] ? servers : "(not known yet)",
			 rs.configured ? "" : " -- NOT in effect now");
		return "direct";
	default:
		snprintf(buf, len, "%s: cluster DNS on this host is off (--dns=off, or no usable "
				   "resolver was found at start); the host's own resolver answers%s",
			 cluster_name ? "no cluster DNS path" : "the host's own resolver",
			 cluster_name ? ", and it normally knows nothing of the cluster's names" : "");
		return "none";
	}
}

static cJSON *explain_name(struct agent *a, const char *name, const cJSON *request)
{
	const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(request, "addresses");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(request, "resolve_error");
	struct resolv_status rs;
	cJSON *o = cJSON_CreateObject(), *out, *reasons, *x;
	char path[512], ns[254], svc_name[254];
	bool cluster, via, all_ok = true;
	const char *kind;

	if (!o)
		return NULL;
	resolv_get_status(a->resolv, &rs);
	cluster = in_domain(name, rs.domain ? rs.domain : RESOLV_DEFAULT_DOMAIN);
	cJSON_AddStringToObject(o, "kind", "name");
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddBoolToObject(o, "cluster_name", cluster);
	kind = dns_path(a, cluster, path, sizeof(path), &via);
	x = cJSON_AddObjectToObject(o, "path");
	cJSON_AddStringToObject(x, "kind", kind);
	cJSON_AddStringToObject(x, "description", path);
	cJSON_AddItemToObject(o, "dns", operate_dns_json(a));
	reasons = cJSON_AddArrayToObject(o, "reasons");
	if (cJSON_IsString(err)) {
		cJSON_AddStringToObject(o, "resolve_error", err->valuestring);
		add_reason(reasons, "the host's resolver did not resolve it: %s", err->valuestring);
		if (cluster && streq(kind, "none"))
			add_reason(reasons, "no cluster DNS path on this host (DNS mode off)");
		all_ok = false;
	}
	out = cJSON_AddArrayToObject(o, "addresses");
	cJSON_ArrayForEach(x, addrs) {
		struct explain_query q = {};
		cJSON *e;

		if (!cJSON_IsString(x) || explain_parse_query(x->valuestring, &q) < 0 ||
		    q.kind != EXPLAIN_ADDRESS)
			continue;
		e = explain_address(a, &q);
		if (!e)
			continue;
		all_ok = all_ok && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "reachable"));
		cJSON_AddItemToArray(out, e);
		if (cJSON_GetArraySize(out) >= 16)
			break;
	}
	if (cluster && service_of_name(name, rs.domain ? rs.domain : RESOLV_DEFAULT_DOMAIN, ns,
				       sizeof(ns), svc_name, sizeof(svc_name))) {
		const struct kube_service *svc = model_service_get(a->model, ns, svc_name);
		struct filter f = { .any_vip = true };

		cJSON_AddItemToObject(o, "service", svc ? explain_service(a, svc, &f) :
							  service_not_found(a, ns, svc_name));
	}
	if (!cJSON_GetArraySize(out) && !cJSON_IsString(err)) {
		add_reason(reasons, "the resolver returned no address");
		all_ok = false;
	}
	cJSON_AddBoolToObject(o, "reachable", all_ok);
	return o;
}

/* A bare word: a Service name in some namespace, or a host name. */
struct name_walk {
	const char *name;
	const struct kube_service *found[16];
	size_t n;
};

static int name_walk(const struct kube_service *svc, void *userdata)
{
	struct name_walk *w = userdata;

	if (streq(svc->name, w->name) && w->n < ARRAY_SIZE(w->found))
		w->found[w->n++] = svc;
	return 0;
}

cJSON *explain_build(struct agent *a, const cJSON *request)
{
	const cJSON *query = cJSON_GetObjectItemCaseSensitive(request, "query");
	struct explain_query q;
	struct filter f = { .any_vip = true };
	cJSON *doc;

	if (!cJSON_IsString(query) || explain_parse_query(query->valuestring, &q) < 0) {
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "error", "cannot parse the query: give NAMESPACE/NAME, "
						      "IP, IP:PORT, [IPv6]:PORT or a DNS name");
		return doc;
	}
	switch (q.kind) {
	case EXPLAIN_SERVICE: {
		const struct kube_service *svc = model_service_get(a->model, q.ns, q.name);

		return svc ? explain_service(a, svc, &f) : service_not_found(a, q.ns, q.name);
	}
	case EXPLAIN_ADDRESS:
		return explain_address(a, &q);
	default:
		break;
	}
	if (!strchr(q.name, '.')) {
		struct name_walk w = { .name = q.name };

		(void)model_foreach_service(a->model, name_walk, &w);
		if (w.n == 1)
			return explain_service(a, w.found[0], &f);
		if (w.n > 1) {
			cJSON *arr;
			char key[2 * KUBE_MAX_NAME_LEN + 2];

			doc = cJSON_CreateObject();
			cJSON_AddStringToObject(doc, "kind", "ambiguous");
			cJSON_AddStringToObject(doc, "name", q.name);
			arr = cJSON_AddArrayToObject(doc, "candidates");
			for (size_t i = 0; i < w.n; i++) {
				snprintf(key, sizeof(key), "%s/%s", w.found[i]->namespace,
					 w.found[i]->name);
				cJSON_AddItemToArray(arr, cJSON_CreateString(key));
			}
			return doc;
		}
	}
	return explain_name(a, q.name, request);
}

/* ---- text form (pure) -------------------------------------------------------- */

static void join(const cJSON *arr, const char *sep, char *buf, size_t len)
{
	const cJSON *v;
	size_t o = 0;

	buf[0] = 0;
	cJSON_ArrayForEach(v, arr)
		if (cJSON_IsString(v) && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? sep : "", v->valuestring);
}

static void render_reasons(const cJSON *doc, const char *indent, FILE *out)
{
	const char *label = b_(doc, "reachable") ? "Note:" : "Why: ";
	const cJSON *r;
	bool first = true;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(doc, "reasons")) {
		if (!cJSON_IsString(r))
			continue;
		fprintf(out, "%s%s %s\n", indent, first ? label : "     ", r->valuestring);
		first = false;
	}
}

static void render_service(const cJSON *s, const char *in, FILE *out)
{
	const cJSON *x, *aff = cJSON_GetObjectItemCaseSensitive(s, "session_affinity");
	char buf[1024];
	size_t width;
	bool first;

	fprintf(out, "%sService %s/%s", in, s_(s, "namespace", "?"), s_(s, "name", "?"));
	if (!b_(s, "found")) {
		fprintf(out, ": NOT reachable\n");
		render_reasons(s, in, out);
		return;
	}
	fprintf(out, " (%s%s): %s\n", s_(s, "type", "?"), b_(s, "headless") ? ", headless" : "",
		b_(s, "reachable") ? "reachable" : "NOT reachable");
	render_reasons(s, in, out);
	join(cJSON_GetObjectItemCaseSensitive(s, "cluster_ips"), ", ", buf, sizeof(buf));
	fprintf(out, "%s  ClusterIP:  %s\n", in, buf[0] ? buf : "none");
	join(cJSON_GetObjectItemCaseSensitive(s, "external_ips"), ", ", buf, sizeof(buf));
	if (buf[0])
		fprintf(out, "%s  External:   %s\n", in, buf);
	join(cJSON_GetObjectItemCaseSensitive(s, "load_balancer_ips"), ", ", buf, sizeof(buf));
	if (buf[0])
		fprintf(out, "%s  LB IPs:     %s\n", in, buf);
	if (s_(s, "external_name", NULL))
		fprintf(out, "%s  Name:       CNAME %s\n", in, s_(s, "external_name", ""));
	fprintf(out, "%s  Ports:     ", in);
	first = true;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "ports")) {
		const char *name = s_(x, "name", "");

		fprintf(out, "%s %s%s%.0f/%s", first ? "" : ",", name, name[0] ? " " : "",
			n_(x, "port", 0), s_(x, "protocol", "?"));
		if (s_(x, "target_port", NULL))
			fprintf(out, " -> %s", s_(x, "target_port", ""));
		first = false;
	}
	fprintf(out, "%s\n", first ? " none" : "");
	fprintf(out, "%s  Affinity:   %s", in, s_(aff, "type", "None"));
	if (n_(aff, "timeout_seconds", -1) >= 0)
		fprintf(out, " (timeout %.0f s%s)", n_(aff, "timeout_seconds", 0),
			cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(aff, "honoured")) ?
				"; clients pinned" : "; not applied");
	fprintf(out, "; internalTrafficPolicy %s\n", s_(s, "internal_traffic_policy", "Cluster"));
	if (s_(s, "note", NULL))
		fprintf(out, "%s  Note:       %s\n", in, s_(s, "note", ""));

	first = true;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "entries")) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(x, "programmed");
		const char *addr = s_(x, "address", "?");

		if (first)
			fprintf(out, "%s  Datapath (desired -> programmed in nftables%s):\n", in,
				b_(s, "gateway") ? "; gateway mode: also for machines routing "
						   "through this host" : "");
		first = false;
		fprintf(out, strchr(addr, ':') ? "%s    [%s]:%.0f/%s" : "%s    %s:%.0f/%s", in, addr,
			n_(x, "port", 0), s_(x, "protocol", "?"));
		fprintf(out, " \"%s\": %s", s_(x, "name", ""), s_(x, "verdict", "?"));
		join(cJSON_GetObjectItemCaseSensitive(x, "backends"), ", ", buf, sizeof(buf));
		if (buf[0])
			fprintf(out, " to %s", buf);
		if (streq(s_(p, "verdict", "none"), "none"))
			fprintf(out, "; NOT programmed\n");
		else if (b_(x, "in_sync"))
			fprintf(out, "; programmed\n");
		else {
			join(cJSON_GetObjectItemCaseSensitive(p, "backends"), ", ", buf, sizeof(buf));
			fprintf(out, "; programmed DIFFERENTLY: %s%s%s\n", s_(p, "verdict", "?"),
				buf[0] ? " to " : "", buf);
		}
	}
	if (first && !cJSON_GetObjectItemCaseSensitive(s, "not_forwarded"))
		fprintf(out, "%s  Datapath:   nothing programmed\n", in);
	else if (first)
		fprintf(out, "%s  Datapath:   nothing (not proxied)\n", in);
	if (n_(s, "entries_not_listed", 0) > 0)
		fprintf(out, "%s    ... and %.0f more\n", in, n_(s, "entries_not_listed", 0));

	fprintf(out, "%s  Endpoints:  %.0f ready, %.0f serving while terminating, %.0f not ready\n",
		in, n_(s, "endpoints_ready", 0), n_(s, "endpoints_serving_terminating", 0),
		n_(s, "endpoints_not_ready", 0));
	width = 0;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "endpoints")) {
		join(cJSON_GetObjectItemCaseSensitive(x, "ports"), ", ", buf, sizeof(buf));
		width = strlen(buf) > width ? strlen(buf) : width;
	}
	width = width > 48 ? 48 : width;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "endpoints")) {
		const char *cond = b_(x, "ready") ? "ready" :
				   b_(x, "serving") && b_(x, "terminating") ? "terminating, serving" :
				   b_(x, "terminating") ? "terminating" : "not ready";

		join(cJSON_GetObjectItemCaseSensitive(x, "ports"), ", ", buf, sizeof(buf));
		fprintf(out, "%s    %-15s %-20s %-*s  %-6s", in, s_(x, "address", "?"), cond,
			(int)width, buf, b_(x, "in_use") ? "in use" : "-");
		if (s_(x, "route", NULL))
			fprintf(out, " route: %s", s_(x, "route", ""));
		if (s_(x, "zone", NULL))
			fprintf(out, " zone %s", s_(x, "zone", ""));
		fprintf(out, "\n");
	}
	if (n_(s, "endpoints_not_listed", 0) > 0)
		fprintf(out, "%s    ... and %.0f more\n", in, n_(s, "endpoints_not_listed", 0));
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(s, "conflicts"))
		fprintf(out, "%s  Conflict:   %s\n", in, s_(x, "message", "?"));
}

static void render_address(const cJSON *d, const char *in, FILE *out)
{
	const cJSON *x;
	char buf[1024];

	fprintf(out, "%sAddress %s", in, s_(d, "address", "?"));
	if (n_(d, "port", 0) > 0)
		fprintf(out, " port %.0f%s%s", n_(d, "port", 0), s_(d, "protocol", NULL) ? "/" : "",
			s_(d, "protocol", ""));
	x = cJSON_GetObjectItemCaseSensitive(d, "services");
	if (cJSON_GetArraySize(x) > 0) {
		fprintf(out, ": a Service address (%s)\n",
			b_(d, "reachable") ? "reachable" : "NOT reachable");
		cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(d, "services")) {
			char in2[32];

			snprintf(in2, sizeof(in2), "%s  ", in);
			render_service(x, in2, out);
		}
		return;
	}
	fprintf(out, ": not a Service address\n");
	render_reasons(d, in, out);
	join(cJSON_GetObjectItemCaseSensitive(d, "endpoint_of"), ", ", buf, sizeof(buf));
	if (buf[0])
		fprintf(out, "%s  It is an endpoint of: %s\n", in, buf);
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(d, "conflicts"))
		fprintf(out, "%s  Conflict: %s\n", in, s_(x, "message", "?"));
}

static int render_name(const cJSON *d, FILE *out)
{
	const cJSON *x, *path = cJSON_GetObjectItemCaseSensitive(d, "path");
	bool any = false;

	fprintf(out, "Name %s: %s\n", s_(d, "name", "?"),
		b_(d, "reachable") ? "resolves, reachable" : "NOT reachable");
	fprintf(out, "  DNS path:   %s\n", s_(path, "description", "?"));
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(d, "addresses")) {
		if (!any)
			fprintf(out, "  Resolver:   returned");
		fprintf(out, "%s %s", any ? "," : "", s_(x, "address", "?"));
		any = true;
	}
	if (any)
		fprintf(out, "\n");
	else if (s_(d, "resolve_error", NULL))
		fprintf(out, "  Resolver:   %s\n", s_(d, "resolve_error", ""));
	render_reasons(d, "  ", out);
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(d, "addresses"))
		render_address(x, "  ", out);
	x = cJSON_GetObjectItemCaseSensitive(d, "service");
	if (x && !cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "addresses"))) {
		fprintf(out, "  The name belongs to:\n");
		render_service(x, "    ", out);
	}
	return b_(d, "reachable") ? OPERATE_EXIT_OK : OPERATE_EXIT_DEGRADED;
}

int explain_render(const cJSON *doc, FILE *out)
{
	const char *kind = s_(doc, "kind", "");
	char buf[1024];

	if (s_(doc, "error", NULL)) {
		fprintf(out, "%s\n", s_(doc, "error", ""));
		return OPERATE_EXIT_USAGE;
	}
	if (streq(kind, "service")) {
		render_service(doc, "", out);
	} else if (streq(kind, "address")) {
		render_address(doc, "", out);
	} else if (streq(kind, "name")) {
		return render_name(doc, out);
	} else if (streq(kind, "ambiguous")) {
		join(cJSON_GetObjectItemCaseSensitive(doc, "candidates"), ", ", buf, sizeof(buf));
		fprintf(out, "Several Services are named %s: %s; give NAMESPACE/NAME\n",
			s_(doc, "name", "?"), buf);
		return OPERATE_EXIT_USAGE;
	} else {
		fprintf(out, "Unknown answer from the daemon\n");
		return OPERATE_EXIT_UNKNOWN;
	}
	return b_(doc, "reachable") ? OPERATE_EXIT_OK : OPERATE_EXIT_DEGRADED;
}
