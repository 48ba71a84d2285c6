/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <uthash.h>

#include "lib/log.h"
#include "model/model.h"

/*
 * A "group" is everything known under one Service name: the Service object
 * (if it exists yet) and the endpoint sources whose service-name points at
 * it. Slices may arrive before their Service and outlive it, so the group
 * exists as long as either side does, or as long as it still has entries
 * the datapath must be told to remove.
 */
struct source;

struct group {
	char *key; /* "namespace/name" */
	struct kube_service *svc;
	struct source *sources; /* utlist-style singly linked via next_in_group */
	struct model_key *keys; /* keys reported at the last flush */
	size_t n_keys;
	size_t n_backends;      /* backends reported at the last flush */
	size_t n_addresses;     /* distinct backend addresses (with a flushed callback) */
	size_t n_addresses_before; /* ... before the flush being made */
	bool dirty;
	UT_hash_handle hh;
};

/* One EndpointSlice or one Endpoints object. */
struct source {
	char *key; /* "namespace/name" of the object itself */
	struct kube_endpoint_slice **slices;
	size_t n_slices;
	struct group *group; /* NULL when the slice names no Service */
	struct source *next_in_group;
	UT_hash_handle hh;
};

struct model {
	struct group *groups;
	struct source *sources;
	struct group **dirty;
	size_t n_dirty;
	size_t cap_dirty;
	size_t n_services;
	size_t n_proxied;
	size_t n_entries;
	size_t n_endpoints;
	uint64_t pending_trigger_usec;
	uint64_t flushed_trigger_usec;
	bool no_external; /* external IPs / LB IPs not programmed */
	char *zone;
	model_flushed_fn flushed;
	void *flushed_data;
};

static char *make_key(const char *ns, const char *name)
{
	return strdup_printf("%s/%s", ns, name);
}

int model_new(struct model **ret)
{
	struct model *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	*ret = m;
	return 0;
}

static void group_free(struct model *m, struct group *g)
{
	HASH_DEL(m->groups, g);
	kube_service_free(g->svc);
	free(g->keys);
	free(g->key);
	free(g);
}

static void source_free(struct source *s)
{
	kube_endpoint_slices_free(s->slices, s->n_slices);
	free(s->key);
	free(s);
}

struct model *model_free(struct model *m)
{
	struct group *g, *gt;
	struct source *s, *st;

	if (!m)
		return NULL;
	HASH_ITER(hh, m->sources, s, st) {
		HASH_DEL(m->sources, s);
		source_free(s);
	}
	HASH_ITER(hh, m->groups, g, gt)
		group_free(m, g);
	free(m->dirty);
	free(m->zone);
	free(m);
	return NULL;
}

static int mark_dirty(struct model *m, struct group *g)
{
	if (g->dirty)
		return 0;
	if (m->n_dirty == m->cap_dirty) {
		size_t cap = m->cap_dirty ? m->cap_dirty * 2 : 64;
		struct group **v = realloc(m->dirty, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->dirty = v;
		m->cap_dirty = cap;
	}
	m->dirty[m->n_dirty++] = g;
	g->dirty = true;
	return 0;
}

static struct group *group_get(struct model *m, const char *key, bool create)
{
	struct group *g;

	HASH_FIND_STR(m->groups, key, g);
	if (g || !create)
		return g;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->key = strdup(key);
	if (!g->key) {
		free(g);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, m->groups, g->key, strlen(g->key), g);
	return g;
}

/* A group that is clean and empty has nothing left to say: free it. */
static bool group_maybe_free(struct model *m, struct group *g)
{
	if (!g->dirty && !g->svc && !g->sources && g->n_keys == 0) {
		group_free(m, g);
		return true;
	}
	return false;
}

int model_service_set(struct model *m, struct kube_service *svc)
{
	_cleanup_(freep) char *key = NULL;
	struct group *g;

	key = make_key(svc->namespace, svc->name);
	g = key ? group_get(m, key, true) : NULL;
	if (!g || mark_dirty(m, g) < 0) {
		kube_service_free(svc);
		if (g)
			group_maybe_free(m, g);
		return -ENOMEM;
	}
	if (!g->svc)
		m->n_services++;
	kube_service_free(g->svc);
	g->svc = svc;
	return 0;
}

void model_service_delete(struct model *m, const char *ns, const char *name)
{
	_cleanup_(freep) char *key = make_key(ns, name);
	struct group *g;

	if (!key)
		return;
	g = group_get(m, key, false);
	if (!g || !g->svc)
		return;
	g->svc = kube_service_free(g->svc);
	m->n_services--;
	if (mark_dirty(m, g) < 0)
		log_debug("model: out of memory marking %s dirty", key);
}

static void source_unlink(struct model *m, struct source *s)
{
	struct source **p;
	struct group *g = s->group;

	if (!g)
		return;
	for (p = &g->sources; *p; p = &(*p)->next_in_group)
		if (*p == s) {
			*p = s->next_in_group;
			break;
		}
	s->group = NULL;
	s->next_in_group = NULL;
	(void)mark_dirty(m, g);
}

static void note_trigger(struct model *m, struct kube_endpoint_slice **slices, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (slices[i]->trigger_time_usec > m->pending_trigger_usec)
			m->pending_trigger_usec = slices[i]->trigger_time_usec;
}

int model_endpoints_set(struct model *m, const char *ns, const char *name,
			struct kube_endpoint_slice **slices, size_t n)
{
	_cleanup_(freep) char *key = make_key(ns, name);
	_cleanup_(freep) char *svc_key = NULL;
	struct source *s;
	struct group *g = NULL;

	if (!key)
		goto oom;
	/* Every slice of one source names the same Service (see kube.h). */
	if (n > 0 && slices[0]->service_name) {
		svc_key = make_key(ns, slices[0]->service_name);
		if (!svc_key || !(g = group_get(m, svc_key, true)))
			goto oom;
	}
	HASH_FIND_STR(m->sources, key, s);
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			goto oom;
		s->key = TAKE_PTR(key);
		HASH_ADD_KEYPTR(hh, m->sources, s->key, strlen(s->key), s);
	} else {
		source_unlink(m, s);
		kube_endpoint_slices_free(s->slices, s->n_slices);
	}
	s->slices = slices;
	s->n_slices = n;
	note_trigger(m, slices, n);
	if (g) {
		s->group = g;
		s->next_in_group = g->sources;
		g->sources = s;
		if (mark_dirty(m, g) < 0)
			return -ENOMEM;
	}
	return 0;
oom:
	kube_endpoint_slices_free(slices, n);
	return -ENOMEM;
}

void model_endpoints_delete(struct model *m, const char *ns, const char *name)
{
	_cleanup_(freep) char *key = make_key(ns, name);
	struct source *s;

	if (!key)
		return;
	HASH_FIND_STR(m->sources, key, s);
	if (!s)
		return;
	source_unlink(m, s);
	HASH_DEL(m->sources, s);
	source_free(s);
}

void model_mark_all_dirty(struct model *m)
{
	struct group *g, *t;

	HASH_ITER(hh, m->groups, g, t)
		(void)mark_dirty(m, g);
}

int model_set_external(struct model *m, bool external)
{
	if (m->no_external != !external) {
		m->no_external = !external;
		model_mark_all_dirty(m);
	}
	return 0;
}

int model_set_zone(struct model *m, const char *zone)
{
	char *z = NULL;

	if (streq_ptr(m->zone, zone))
		return 0;
	if (zone && !(z = strdup(zone)))
		return -ENOMEM;
	free(m->zone);
	m->zone = z;
	model_mark_all_dirty(m);
	return 0;
}

const struct kube_service *model_service_get(const struct model *m, const char *ns,
					     const char *name)
{
	_cleanup_(freep) char *key = make_key(ns, name);
	struct group *g;

	if (!key)
		return NULL;
	HASH_FIND_STR(m->groups, key, g);
	return g ? g->svc : NULL;
}

bool model_has_dirty(const struct model *m)
{
	return m->n_dirty > 0;
}

/* Why a Service is not proxied, as a reason and as a whole note; both are
 * literals, so callers may keep them as long as they like. */
#define NOT_PROXIED(reason) { reason, "not proxied: " reason }
static const struct {
	const char *reason, *note;
} skip_reasons[] = {
	NOT_PROXIED("ExternalName Service (DNS only)"),
	NOT_PROXIED("headless Service (DNS only)"),
	NOT_PROXIED("label service.kubernetes.io/service-proxy-name hands it to another proxy"),
	NOT_PROXIED("no ClusterIP"),
};

static int service_skip_index(const struct kube_service *svc)
{
	if (svc->type == KUBE_SERVICE_EXTERNAL_NAME)
		return 0;
	if (svc->headless || svc->headless_label)
		return 1;
	if (svc->proxy_name)
		return 2;
	if (svc->n_cluster_ips == 0)
		return 3;
	return -1;
}

const char *model_service_skip_reason(const struct kube_service *svc)
{
	int i = service_skip_index(svc);

	return i < 0 ? NULL : skip_reasons[i].reason;
}

const char *model_service_note(const struct kube_service *svc)
{
	int i = service_skip_index(svc);

	if (i >= 0)
		return skip_reasons[i].note;
	if (svc->internal_traffic_local)
		return "internalTrafficPolicy Local: no endpoint is local to this host, so its "
		       "ClusterIP traffic is dropped (as on a node without local endpoints)";
	return NULL;
}

/* ---- desired entries ---------------------------------------------------- */

struct entry_list {
	struct model_entry *v;
	size_t n;
	size_t cap;
};

static void entry_list_clear(struct entry_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].backends);
	free(l->v);
	*l = (struct entry_list){ 0 };
}

static struct model_entry *entry_list_add(struct entry_list *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		struct model_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		l->v = v;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	return &l->v[l->n++];
}

static int backend_cmp(const void *a, const void *b)
{
	const struct model_backend *x = a, *y = b;
	int r;

	if (x->addr.family != y->addr.family)
		return x->addr.family - y->addr.family;
	r = memcmp(x->addr.bytes, y->addr.bytes,
		   x->addr.family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr));
	if (r)
		return r;
	return (int)x->port - (int)y->port;
}

static const struct kube_endpoint_port *slice_port(const struct kube_endpoint_slice *sl,
						   const struct kube_service_port *sp)
{
	for (size_t i = 0; i < sl->n_ports; i++) {
		const struct kube_endpoint_port *p = &sl->ports[i];

		if (p->port != 0 && p->protocol == sp->protocol && streq(p->name, sp->name))
			return p;
	}
	return NULL;
}

/*
 * Usable endpoints for one Service port in one family: the ready ones or,
 * when none is ready, the serving-and-terminating ones (kube-proxy's
 * fallback, so a rolling update does not black-hole the Service).
 */
/*
 * Topology-aware hints, as kube-proxy applies them: when this host has a
 * zone, every ready endpoint carries zone hints and at least one names our
 * zone, only those are used.
 */
static bool zone_match(const struct kube_endpoint *ep, const char *zone)
{
	for (size_t i = 0; i < ep->n_hint_zones; i++)
		if (streq(ep->hint_zones[i], zone))
			return true;
	return false;
}

static bool use_zone_hints(const struct group *g, const struct kube_service_port *sp, int family,
			   const char *zone)
{
	bool any_match = false;

	if (!zone)
		return false;
	for (const struct source *s = g->sources; s; s = s->next_in_group)
		for (size_t i = 0; i < s->n_slices; i++) {
			const struct kube_endpoint_slice *sl = s->slices[i];

			if (sl->family != family || !slice_port(sl, sp))
				continue;
			for (size_t j = 0; j < sl->n_endpoints; j++) {
				const struct kube_endpoint *ep = &sl->endpoints[j];

				if (!ep->ready)
					continue;
				if (!ep->has_hints)
					return false;
				any_match = any_match || zone_match(ep, zone);
			}
		}
	return any_match;
}

static int collect_backends(const struct group *g, const struct kube_service_port *sp, int family,
			    bool terminating, const char *zone, struct model_entry *e)
{
	for (const struct source *s = g->sources; s; s = s->next_in_group)
		for (size_t i = 0; i < s->n_slices; i++) {
			const struct kube_endpoint_slice *sl = s->slices[i];
			const struct kube_endpoint_port *p;

			if (sl->family != family || !(p = slice_port(sl, sp)))
				continue;
			for (size_t j = 0; j < sl->n_endpoints; j++) {
				const struct kube_endpoint *ep = &sl->endpoints[j];
				bool use = terminating ? ep->serving && ep->terminating : ep->ready;
				struct model_backend *v;

				if (!use || (zone && !zone_match(ep, zone)))
					continue;
				v = realloc(e->backends, (e->n_backends + 1) * sizeof(*v));
				if (!v)
					return -ENOMEM;
				e->backends = v;
				v[e->n_backends++] = (struct model_backend){ .addr = ep->addr,
									     .port = p->port };
			}
		}
	return 0;
}

static void dedup_backends(struct model_entry *e)
{
	size_t o = 0;

	if (e->n_backends < 2)
		return;
	qsort(e->backends, e->n_backends, sizeof(e->backends[0]), backend_cmp);
	for (size_t i = 0; i < e->n_backends; i++)
		if (o == 0 || backend_cmp(&e->backends[o - 1], &e->backends[i]) != 0)
			e->backends[o++] = e->backends[i];
	e->n_backends = o;
}

static int fill_entry(const struct model *m, const struct group *g,
		      const struct kube_service_port *sp, const struct kube_ip *vip, bool external,
		      struct model_entry *e)
{
	const struct kube_service *svc = g->svc;
	const char *zone = NULL;
	int r;

	e->vip = *vip;
	e->protocol = sp->protocol;
	e->port = sp->port;
	if (sp->name[0])
		snprintf(e->comment, sizeof(e->comment), "%s:%s", g->key, sp->name);
	else
		snprintf(e->comment, sizeof(e->comment), "%s:%u", g->key, sp->port);
	if (svc->internal_traffic_local && !external) {
		/* An off-cluster host never has node-local endpoints. Traffic to
		 * external IPs from the host itself is short-circuited to the
		 * cluster-wide endpoints, as kube-proxy does for local traffic. */
		e->verdict = MODEL_DROP;
		return 0;
	}
	if (use_zone_hints(g, sp, vip->family, m->zone))
		zone = m->zone;
	r = collect_backends(g, sp, vip->family, false, zone, e);
	if (r >= 0 && e->n_backends == 0)
		r = collect_backends(g, sp, vip->family, true, NULL, e);
	if (r < 0)
		return r;
	dedup_backends(e);
	e->verdict = e->n_backends > 0 ? MODEL_FORWARD : MODEL_REJECT;
	if (svc->affinity_client_ip)
		e->affinity_timeout_sec = svc->affinity_timeout_sec;
	return 0;
}

static bool vip_listed(const struct entry_list *l, const struct kube_ip *vip)
{
	for (size_t i = 0; i < l->n; i++)
		if (kube_ip_equal(&l->v[i].vip, vip))
			return true;
	return false;
}

static int add_vip(const struct model *m, const struct group *g, const struct kube_ip *vip,
		   bool external, struct entry_list *out)
{
	const struct kube_service *svc = g->svc;

	/* An address listed twice (clusterIP also in externalIPs) once. */
	if (vip_listed(out, vip))
		return 0;
	for (size_t j = 0; j < svc->n_ports; j++) {
		struct model_entry *e = entry_list_add(out);
		int r;

		if (!e)
			return -ENOMEM;
		r = fill_entry(m, g, &svc->ports[j], vip, external, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int group_entries(const struct model *m, const struct group *g, struct entry_list *out)
{
	const struct kube_service *svc = g->svc;
	int r = 0;

	if (!svc || model_service_skip_reason(svc))
		return 0;
	for (size_t i = 0; i < svc->n_cluster_ips && r >= 0; i++)
		r = add_vip(m, g, &svc->cluster_ips[i], false, out);
	if (m->no_external)
		return r;
	for (size_t i = 0; i < svc->n_external_ips && r >= 0; i++)
		r = add_vip(m, g, &svc->external_ips[i], true, out);
	for (size_t i = 0; i < svc->n_lb_ips && r >= 0; i++)
		r = add_vip(m, g, &svc->lb_ips[i], true, out);
	return r;
}

static bool key_equal(const struct model_key *k, const struct model_entry *e)
{
	return k->protocol == e->protocol && k->port == e->port && kube_ip_equal(&k->vip, &e->vip);
}

static bool key_in(const struct model_key *k, const struct entry_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (key_equal(k, &l->v[i]))
			return true;
	return false;
}

static size_t count_backends(const struct entry_list *l)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++)
		n += l->v[i].n_backends;
	return n;
}

static int ip_cmp(const void *a, const void *b)
{
	const struct kube_ip *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

/* Distinct backend addresses over all entries; 0 on allocation failure. */
static size_t count_addresses(const struct entry_list *l)
{
	_cleanup_(freep) struct kube_ip *v = NULL;
	size_t n = 0, distinct = 0, total = count_backends(l);

	if (total == 0 || !(v = calloc(total, sizeof(*v))))
		return 0;
	for (size_t i = 0; i < l->n; i++)
		for (size_t j = 0; j < l->v[i].n_backends; j++) {
			v[n] = (struct kube_ip){ .family = l->v[i].backends[j].addr.family };
			memcpy(v[n].bytes, l->v[i].backends[j].addr.bytes, sizeof(v[n].bytes));
			n++;
		}
	qsort(v, n, sizeof(*v), ip_cmp);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || ip_cmp(&v[i - 1], &v[i]) != 0)
			distinct++;
	return distinct;
}

/* Remember what was reported for g, so the next flush can say what went away. */
static int group_commit(struct model *m, struct group *g, const struct entry_list *l)
{
	struct model_key *keys = NULL;

	if (l->n > 0) {
		keys = calloc(l->n, sizeof(*keys));
		if (!keys)
			return -ENOMEM;
	}
	for (size_t i = 0; i < l->n; i++)
		keys[i] = (struct model_key){ l->v[i].vip, l->v[i].protocol, l->v[i].port };
	m->n_entries += l->n - g->n_keys;
	m->n_proxied += (l->n > 0) - (g->n_keys > 0);
	m->n_endpoints += count_backends(l) - g->n_backends;
	free(g->keys);
	g->keys = keys;
	g->n_keys = l->n;
	g->n_backends = count_backends(l);
	if (m->flushed) {
		g->n_addresses_before = g->n_addresses;
		g->n_addresses = count_addresses(l);
	}
	return 0;
}

static int emit_removals(const struct group *g, const struct entry_list *l, model_change_fn fn,
			 void *userdata)
{
	for (size_t i = 0; i < g->n_keys; i++) {
		int r;

		if (key_in(&g->keys[i], l))
			continue;
		r = fn(&g->keys[i], NULL, userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

static int emit_entries(const struct entry_list *l, model_change_fn fn, void *userdata)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct model_entry *e = &l->v[i];
		struct model_key k = { e->vip, e->protocol, e->port };
		int r = fn(&k, e, userdata);

		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Removals of every dirty group go out before any addition, so a VIP that
 * moves from a deleted Service to a new one in the same flush ends up
 * pointing at the new one.
 */
int model_flush_changes(struct model *m, model_change_fn fn, void *userdata)
{
	size_t n = m->n_dirty;
	struct entry_list *lists;
	int r = 0;

	if (n == 0)
		return 0;
	lists = calloc(n, sizeof(*lists));
	if (!lists)
		return -ENOMEM;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = group_entries(m, m->dirty[i], &lists[i]);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = emit_removals(m->dirty[i], &lists[i], fn, userdata);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = emit_entries(&lists[i], fn, userdata);
	for (size_t i = 0; i < n && r >= 0; i++)
		r = group_commit(m, m->dirty[i], &lists[i]);
	if (r >= 0) {
		for (size_t i = 0; i < n; i++) {
			m->dirty[i]->dirty = false;
			/* Left in the (now empty) dirty list for the callback below. */
			if (group_maybe_free(m, m->dirty[i]))
				m->dirty[i] = NULL;
		}
		m->n_dirty = 0;
		m->flushed_trigger_usec = m->pending_trigger_usec;
		m->pending_trigger_usec = 0;
	}
	for (size_t i = 0; i < n; i++)
		entry_list_clear(&lists[i]);
	free(lists);
	for (size_t i = 0; r >= 0 && m->flushed && i < n; i++)
		if (m->dirty[i] && m->dirty[i]->svc)
			m->flushed(m->dirty[i]->key, m->dirty[i]->svc, m->dirty[i]->n_addresses_before,
				   m->dirty[i]->n_addresses, m->flushed_data);
	return r;
}

void model_get_stats(const struct model *m, struct model_stats *ret)
{
	*ret = (struct model_stats){
		.services = m->n_services,
		.services_proxied = m->n_proxied,
		.entries = m->n_entries,
		.endpoints = m->n_endpoints,
		.newest_trigger_usec = m->flushed_trigger_usec,
	};
}

/* ---- read-only views ---------------------------------------------------- */

int model_foreach_service(const struct model *m, model_service_fn fn, void *userdata)
{
	const struct group *g, *t;

	HASH_ITER(hh, m->groups, g, t) {
		int r;

		if (!g->svc)
			continue;
		r = fn(g->svc, userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

static const struct group *group_find(const struct model *m, const char *ns, const char *name)
{
	_cleanup_(freep) char *key = make_key(ns, name);
	struct group *g = NULL;

	if (key)
		HASH_FIND_STR(m->groups, key, g);
	return g;
}

int model_service_entries(const struct model *m, const char *ns, const char *name,
			  model_change_fn fn, void *userdata)
{
	const struct group *g = group_find(m, ns, name);
	struct entry_list l = {};
	int r;

	if (!g)
		return 0;
	r = group_entries(m, g, &l);
	for (size_t i = 0; r >= 0 && i < l.n; i++) {
		struct model_key k = { l.v[i].vip, l.v[i].protocol, l.v[i].port };

		r = fn(&k, &l.v[i], userdata);
	}
	entry_list_clear(&l);
	return r;
}

int model_service_slices(const struct model *m, const char *ns, const char *name,
			 model_slice_fn fn, void *userdata)
{
	const struct group *g = group_find(m, ns, name);

	if (!g)
		return 0;
	for (const struct source *s = g->sources; s; s = s->next_in_group)
		for (size_t i = 0; i < s->n_slices; i++) {
			int r = fn(s->slices[i], userdata);

			if (r < 0)
				return r;
		}
	return 0;
}

void model_set_flushed_callback(struct model *m, model_flushed_fn fn, void *userdata)
{
	m->flushed = fn;
	m->flushed_data = userdata;
}
