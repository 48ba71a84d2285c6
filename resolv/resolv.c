/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cluster DNS on the host: mode detection, following the DNS Service, the
 * resolved and direct modes on the event loop, stop and cleanup.
 *
 * Detection (auto) follows Tailscale's manager_linux.go: resolved is used
 * only when it is really the resolver, i.e. it answers on the bus and
 * either every nameserver in /etc/resolv.conf is its stub or nsswitch.conf
 * asks nss-resolve before dns. In uplink/foreign mode, resolved writes
 * every link's servers into /run/systemd/resolve/resolv.conf, so the
 * cluster DNS would become a resolver for all names of programs reading
 * that file: not a safe choice. direct is never picked by auto.
 *
 * Without resolved in the path, auto takes NetworkManager's dnsmasq when
 * that already is the resolver (resolv.conf lists only its 127.0.0.1):
 * adding "server=/<cluster domain>/..." to it changes nothing for other
 * names. Turning that plugin on where NetworkManager writes resolv.conf
 * with its default processing changes resolv.conf for every program
 * (nameserver 127.0.0.1, which Docker does not copy into containers), so
 * only --dns=networkmanager (or --dns=direct, which would otherwise rewrite
 * NetworkManager's file) does that. See nm.c.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <syslog.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "resolv/internal.h"
#include "resolv/resolv.h"

#define NSSWITCH_PATH "/etc/nsswitch.conf"
#define RESOLVED_RUN_DIR "/run/systemd/resolve/"
#define NM_NO_STUB_RESOLV_CONF "/run/NetworkManager/no-stub-resolv.conf"
#define RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC (30 * USEC_PER_SEC)
#define NO_SUCH_LINK_USEC (100 * USEC_PER_MSEC)
#define NO_SUCH_LINK_TRIES 50
#define WATCH_SETTLE_USEC (200 * USEC_PER_MSEC)
#define REAPPLY_WINDOW_USEC (60 * USEC_PER_SEC)
#define REAPPLY_MAX 5
#define MAX_LINK_ADDRS 2

struct resolv {
	sd_event *event;
	resolv_report_fn report;
	void *userdata;
	enum resolv_mode mode; /* in effect: RESOLVED, DIRECT or OFF */

	char *domain;
	/* What goes to the cluster DNS: domain, then the reverse zones of
	 * the Service CIDRs. */
	char **route_domains;
	size_t n_route_domains;
	char *service_ns, *service_name;
	bool fixed; /* servers given on the command line */
	struct kube_ip servers[KUBE_MAX_IPS];
	size_t n_servers;
	bool service_seen;
	struct kube_ip link_addrs[MAX_LINK_ADDRS];
	size_t n_link_addrs;
	sd_event_source *retry;
	uint64_t retry_usec;
	bool attempted; /* an attempt to apply failed (reported; retried) */

	/* resolved */
	sd_bus *bus;
	sd_bus_slot *owner_slot, *disconnect_slot;
	int ifindex;
	const char *link_kind;
	bool kind_reported;
	bool link_up;
	struct resolv_responder *responder; /* fail-fast REFUSED on the link address */
	bool responder_failed;
	struct resolved_apply *apply;
	bool again;        /* apply again when the running one ends */
	unsigned no_such_link;
	char *applied;     /* description of what resolved has, for the log */

	/* networkmanager */
	struct resolv_nm *nm;

	/* direct */
	sd_event_source *watch_dir, *watch_file, *settle;
	char *written;
	uint64_t reapply_since;
	unsigned reapplies;
	bool direct_gave_up;
};

static const char *const mode_names[_RESOLV_MODE_MAX] = {
	[RESOLV_MODE_AUTO] = "auto",
	[RESOLV_MODE_RESOLVED] = "resolved",
	[RESOLV_MODE_DIRECT] = "direct",
	[RESOLV_MODE_OFF] = "off",
	[RESOLV_MODE_NETWORKMANAGER] = "networkmanager",
};

static const struct resolv_direct_paths direct_paths = {
	.conf = RESOLV_CONF_PATH,
	.backup = RESOLV_CONF_BACKUP_PATH,
};

static const struct resolv_nm_paths nm_paths = {
	.conf = RESOLV_NM_CONF_PATH,
	.dnsmasq = RESOLV_NM_DNSMASQ_PATH,
};

const char *resolv_mode_to_string(enum resolv_mode m)
{
	return m < _RESOLV_MODE_MAX ? mode_names[m] : "?";
}

void resolv_report(resolv_report_fn fn, void *userdata, int priority, const char *fmt, ...)
{
	_cleanup_(freep) char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (fn && msg)
		fn(userdata, priority, msg);
}

static char *mfree_str(char *p)
{
	free(p);
	return NULL;
}

#define say(r, prio, ...) resolv_report((r)->report, (r)->userdata, prio, __VA_ARGS__)

/* ---- options ------------------------------------------------------------ */

static int parse_mode(const char *s)
{
	for (int m = 0; m < _RESOLV_MODE_MAX; m++)
		if (streq(s, mode_names[m]))
			return m;
	return -EINVAL;
}

/* "IP[,IP...]" into ips; at most max, and one per family if per_family. */
static int parse_ips(const char *s, struct kube_ip *ips, size_t max, bool per_family,
		     size_t *ret_n)
{
	_cleanup_(freep) char *copy = strdup(s);
	char *save = NULL, *tok;
	size_t n = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (n == max || kube_ip_parse(tok, &ips[n]) < 0)
			return -EINVAL;
		for (size_t i = 0; per_family && i < n; i++)
			if (ips[i].family == ips[n].family)
				return -EINVAL;
		n++;
	}
	if (n == 0)
		return -EINVAL;
	*ret_n = n;
	return 0;
}

static int split_service(const char *s, char **ret_ns, char **ret_name)
{
	const char *slash = strchr(s, '/');

	if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') ||
	    strlen(s) > 2 * KUBE_MAX_NAME_LEN)
		return -EINVAL;
	*ret_ns = strndup(s, (size_t)(slash - s));
	*ret_name = strdup(slash + 1);
	if (!*ret_ns || !*ret_name) {
		free(*ret_ns);
		free(*ret_name);
		return -ENOMEM;
	}
	return 0;
}

/* The reverse zones of "CIDR[,CIDR...]" (ret NULL: only check). */
static int reverse_zones(const char *cidrs, char ***ret, size_t *ret_n)
{
	_cleanup_(freep) char *copy = strdup(cidrs);
	char **zones = NULL, *save = NULL, *tok;
	size_t n = 0;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && r >= 0; tok = strtok_r(NULL, ",", &save))
		r = resolv_reverse_zones(tok, &zones, &n);
	if (r >= 0 && ret) {
		*ret = zones;
		*ret_n = n;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		free(zones[i]);
	free(zones);
	return r;
}

int resolv_options_check(const struct resolv_options *o, char **ret_error)
{
	struct kube_ip ips[KUBE_MAX_IPS];
	char *ns = NULL, *name = NULL;
	size_t n;

	*ret_error = NULL;
	if (o->mode && parse_mode(o->mode) < 0) {
		*ret_error = strdup_printf("--dns=%s: expected auto, resolved, direct, "
					   "networkmanager or off",
					   o->mode);
		return -EINVAL;
	}
	if (o->cluster_domain && resolv_domain_check(o->cluster_domain) < 0) {
		*ret_error = strdup_printf("--cluster-domain=%s: not a DNS domain", o->cluster_domain);
		return -EINVAL;
	}
	if (o->service) {
		if (split_service(o->service, &ns, &name) < 0) {
			*ret_error = strdup_printf("--dns-service=%s: expected NAMESPACE/NAME",
						   o->service);
			return -EINVAL;
		}
		free(ns);
		free(name);
	}
	if (o->addresses && parse_ips(o->addresses, ips, KUBE_MAX_IPS, false, &n) < 0) {
		*ret_error = strdup_printf("--dns-address=%s: expected IP[,IP...]", o->addresses);
		return -EINVAL;
	}
	if (o->service_cidrs && reverse_zones(o->service_cidrs, NULL, NULL) == -EINVAL) {
		*ret_error = strdup_printf("--service-cidr=%s: expected CIDR[,CIDR...], networks "
					   "with their host bits zero",
					   o->service_cidrs);
		return -EINVAL;
	}
	if (o->link_addresses &&
	    parse_ips(o->link_addresses, ips, MAX_LINK_ADDRS, true, &n) < 0) {
		*ret_error = strdup_printf("--dns-link-address=%s: expected one IPv4 and/or one "
					   "IPv6 address, comma-separated",
					   o->link_addresses);
		return -EINVAL;
	}
	return 0;
}

/* ---- detection ---------------------------------------------------------- */

/* Why resolved is not the resolver of this host, or NULL when it is. */
static char *resolved_not_in_path(void)
{
	_cleanup_(freep) char *text = NULL, *nss = NULL, *target = NULL;
	_cleanup_(resolv_conf_freep) struct resolv_conf *c = NULL;
	size_t len = 0, nss_len = 0;
	char link[PATH_MAX];
	ssize_t n;
	bool stub, via_nss;

	n = readlink(RESOLV_CONF_PATH, link, sizeof(link) - 1);
	if (n > 0) {
		link[n] = 0;
		target = realpath(RESOLV_CONF_PATH, NULL);
	}
	if (resolv_read_file(RESOLV_CONF_PATH, RESOLV_CONF_MAX_SIZE, &text, &len) < 0 ||
	    resolv_conf_parse(text, len, &c, NULL) < 0)
		c = NULL;
	stub = c && resolv_conf_only_stub(c);
	via_nss = resolv_read_file(NSSWITCH_PATH, RESOLV_CONF_MAX_SIZE, &nss, &nss_len) >= 0 &&
		  resolv_nsswitch_resolve_first(nss, nss_len);
	if (target && streq(target, RESOLVED_RUN_DIR "resolv.conf")) {
		return strdup_printf("%s points to %s (resolved's \"uplink\" file), which lists "
				     "every link's servers for all names: the cluster DNS would "
				     "get every query of programs that read it",
				     RESOLV_CONF_PATH, target);
	}
	if (stub || via_nss)
		return NULL;
	if (!c)
		return strdup_printf("%s is missing or unreadable and nsswitch.conf's hosts: line "
				     "does not use 'resolve'",
				     RESOLV_CONF_PATH);
	return strdup_printf("%s%s%s lists nameserver %s, not resolved's stub %s, and "
			     "nsswitch.conf's hosts: line does not use 'resolve' before 'dns': "
			     "lookups bypass systemd-resolved",
			     RESOLV_CONF_PATH, n > 0 ? " -> " : "", n > 0 ? link : "",
			     c->n_nameservers ? c->nameservers[0] : "(none)", RESOLV_STUB_ADDRESS);
}

/*
 * verify: make sure resolved answers and serves this network namespace
 * (blocking calls, with timeouts: at start and in cleanup only). When
 * reconnecting on the event loop, the first asynchronous call finds out.
 */
static int bus_connect(bool verify, sd_bus **ret, char **ret_error)
{
	sd_bus *bus = NULL;
	int r;

	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_set_method_call_timeout(bus, RESOLVED_CALL_TIMEOUT_USEC);
	if (r < 0) {
		*ret_error = strdup_printf("cannot connect to the system bus: %s", strerror(-r));
		sd_bus_unref(bus);
		return r;
	}
	if (verify)
		r = resolved_ping(bus, ret_error);
	if (r >= 0 && verify)
		r = resolved_check_netns(bus, ret_error);
	if (r < 0) {
		sd_bus_flush_close_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

/* ---- following the DNS Service ------------------------------------------ */

static void sync_host(struct resolv *r);

static bool servers_equal(const struct resolv *r, const struct kube_ip *ips, size_t n)
{
	if (n != r->n_servers)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!kube_ip_equal(&ips[i], &r->servers[i]))
			return false;
	return true;
}

static char *servers_text(const struct kube_ip *ips, size_t n)
{
	char buf[KUBE_MAX_IPS * (INET6_ADDRSTRLEN + 1)] = "", addr[INET6_ADDRSTRLEN];
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		kube_ip_format(&ips[i], addr, sizeof(addr));
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "," : "", addr);
		if (len >= sizeof(buf))
			break;
	}
	return strdup(buf);
}

void resolv_service_update(struct resolv *r, const struct kube_service *svc)
{
	_cleanup_(freep) char *text = NULL;

	if (!r || r->mode == RESOLV_MODE_OFF || r->fixed || !streq(svc->namespace, r->service_ns) ||
	    !streq(svc->name, r->service_name))
		return;
	r->service_seen = true;
	if (svc->n_cluster_ips == 0 || svc->headless) {
		say(r, LOG_WARNING,
		    "Service %s/%s has no ClusterIP (headless or %s): keeping the host's DNS as it is",
		    svc->namespace, svc->name,
		    svc->type == KUBE_SERVICE_EXTERNAL_NAME ? "ExternalName" : "none allocated");
		return;
	}
	if (servers_equal(r, svc->cluster_ips, svc->n_cluster_ips))
		return;
	text = servers_text(svc->cluster_ips, svc->n_cluster_ips);
	if (r->n_servers)
		say(r, LOG_NOTICE, "Service %s/%s changed its ClusterIP to %s: following it",
		    svc->namespace, svc->name, text ?: "?");
	memcpy(r->servers, svc->cluster_ips, svc->n_cluster_ips * sizeof(r->servers[0]));
	r->n_servers = svc->n_cluster_ips;
	sync_host(r);
}

void resolv_service_delete(struct resolv *r, const char *ns, const char *name)
{
	if (!r || r->mode == RESOLV_MODE_OFF || r->fixed || !streq(ns, r->service_ns) ||
	    !streq(name, r->service_name))
		return;
	/* Fail static: a Service that is recreated comes back, and until then
	 * cluster names stay routed to the cluster (and fail), never leak. */
	if (r->n_servers)
		say(r, LOG_WARNING,
		    "Service %s/%s was deleted: keeping the cluster DNS configuration until it "
		    "returns (cluster names fail meanwhile)",
		    ns, name);
}

void resolv_services_synced(struct resolv *r)
{
	if (!r || r->mode == RESOLV_MODE_OFF || r->fixed || r->service_seen)
		return;
	r->service_seen = true; /* say it once */
	say(r, LOG_WARNING,
	    "Service %s/%s not found: cluster names do not resolve on this host until it "
	    "exists (or give --dns-service / --dns-address)",
	    r->service_ns, r->service_name);
}

/* ---- retries ------------------------------------------------------------ */

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	sync_host(userdata);
	return 0;
}

static void retry_in(struct resolv *r, uint64_t usec)
{
	r->retry = sd_event_source_disable_unref(r->retry);
	if (sd_event_add_time_relative(r->event, &r->retry, CLOCK_MONOTONIC, usec, 0, on_retry,
				       r) < 0)
		say(r, LOG_ERR, "Cannot arm the DNS retry timer");
}

static void retry_later(struct resolv *r)
{
	uint64_t d = r->retry_usec ? r->retry_usec : RETRY_MIN_USEC;

	r->attempted = true;
	r->retry_usec = d * 2 > RETRY_MAX_USEC ? RETRY_MAX_USEC : d * 2;
	retry_in(r, d);
}

/* ---- resolved mode ------------------------------------------------------ */

static void resolved_apply_done(void *userdata, int res, bool no_such_link, const char *error)
{
	struct resolv *r = userdata;
	_cleanup_(freep) char *text = NULL, *desc = NULL;
	_cleanup_(freep) char *err = NULL;
	char addr[INET6_ADDRSTRLEN];

	r->apply = resolved_apply_free(r->apply);
	if (res < 0) {
		/* resolved learns of new links asynchronously. */
		if (no_such_link && r->no_such_link++ < NO_SUCH_LINK_TRIES) {
			retry_in(r, NO_SUCH_LINK_USEC);
			return;
		}
		say(r, LOG_ERR, "systemd-resolved refused the settings of %s: %s; reverting the "
			       "link and retrying",
		    RESOLV_LINK_NAME, error ?: strerror(-res));
		/* No half-configured link: drop whatever was applied. */
		(void)sd_bus_call_method_async(r->bus, NULL, "org.freedesktop.resolve1",
					       "/org/freedesktop/resolve1",
					       "org.freedesktop.resolve1.Manager", "RevertLink",
					       NULL, NULL, "i", r->ifindex);
		r->applied = mfree_str(r->applied);
		/* Make sure of the link too: someone may have deleted it. */
		r->ifindex = 0;
		r->link_up = false;
		r->no_such_link = 0;
		retry_later(r);
		return;
	}
	r->no_such_link = 0;
	r->retry_usec = 0;
	if (!r->link_up) {
		if (resolv_link_set_up(r->ifindex, &err) < 0) {
			say(r, LOG_ERR, "Cannot set %s up: %s", RESOLV_LINK_NAME, err ?: "?");
			retry_later(r);
			return;
		}
		r->link_up = true;
	}
	text = servers_text(r->servers, r->n_servers);
	desc = strdup_printf("~%s -> %s", r->domain, text ?: "?");
	if (desc && !streq_ptr(desc, r->applied)) {
		kube_ip_format(&r->link_addrs[0], addr, sizeof(addr));
		say(r, LOG_INFO,
		    "systemd-resolved: names in ~%s go to %s via link %s (%s, %s%s%s); all "
		    "other names as before",
		    r->domain, text ?: "?", RESOLV_LINK_NAME, r->link_kind, addr,
		    r->n_link_addrs > 1 ? ", ..." : "",
		    r->responder ? "; it answers REFUSED when the cluster DNS cannot" : "");
		free(r->applied);
		r->applied = TAKE_PTR(desc);
	}
	if (r->again) {
		r->again = false;
		sync_host(r);
	}
}

static int bus_attach(struct resolv *r);

static void resolved_sync(struct resolv *r)
{
	struct kube_ip servers[KUBE_MAX_IPS + MAX_LINK_ADDRS];
	struct resolved_link_config config;
	_cleanup_(freep) char *err = NULL;
	size_t n = 0;
	int res;

	if (r->n_servers == 0)
		return;
	if (!r->bus) {
		if (bus_attach(r) < 0) {
			retry_later(r);
			return;
		}
		say(r, LOG_NOTICE, "Reconnected to the system bus");
	}
	if (r->apply) {
		r->again = true;
		return;
	}
	/* Queries leave from the link's address: only families it has. */
	for (size_t i = 0; i < r->n_servers; i++)
		for (size_t j = 0; j < r->n_link_addrs; j++)
			if (r->servers[i].family == r->link_addrs[j].family)
				servers[n++] = r->servers[i];
	if (n == 0) {
		say(r, LOG_ERR,
		    "The DNS Service has no address of a family %s has an address of; give "
		    "--dns-link-address an address of that family",
		    RESOLV_LINK_NAME);
		r->attempted = true;
		return;
	}
	if (r->ifindex == 0) {
		res = resolv_link_ensure(RESOLV_LINK_NAME, r->link_addrs, r->n_link_addrs,
					 &r->ifindex, &r->link_kind, &err);
		if (res < 0) {
			say(r, LOG_ERR, "Cannot create link %s: %s", RESOLV_LINK_NAME,
			    err ?: strerror(-res));
			r->ifindex = 0;
			retry_later(r);
			return;
		}
		if (!streq(r->link_kind, "dummy") && !r->kind_reported)
			say(r, LOG_NOTICE,
			    "This kernel has no dummy link type; %s is an %s link instead",
			    RESOLV_LINK_NAME, r->link_kind);
		r->kind_reported = true;
	}
	if (!r->responder && !r->responder_failed) {
		res = resolv_responder_new(r->event, r->link_addrs, r->n_link_addrs, &r->responder,
					   &err);
		if (res < 0) {
			r->responder_failed = true;
			say(r, LOG_WARNING,
			    "No fail-fast responder on %s (%s): while the cluster DNS is "
			    "unreachable, lookups through resolved's stub wait out their timeouts",
			    RESOLV_LINK_NAME, err ?: strerror(-res));
		}
	}
	/* After the cluster DNS: resolved turns to it only when that fails. */
	for (size_t j = 0; r->responder && j < r->n_link_addrs; j++)
		servers[n++] = r->link_addrs[j];
	config = (struct resolved_link_config){
		.ifindex = r->ifindex,
		.servers = servers,
		.n_servers = n,
		.domains = (const char *const *)r->route_domains,
		.n_domains = r->n_route_domains,
	};
	res = resolved_apply_start(r->bus, &config, resolved_apply_done, r, &r->apply);
	if (res < 0) {
		say(r, LOG_ERR, "Cannot talk to systemd-resolved: %s", strerror(-res));
		retry_later(r);
	}
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct resolv *r = userdata;
	const char *name, *old_owner, *new_owner;

	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
	    !streq(name, "org.freedesktop.resolve1"))
		return 0;
	if (!*new_owner) {
		say(r, LOG_WARNING, "systemd-resolved left the bus; applying the settings of %s "
				    "again when it returns",
		    RESOLV_LINK_NAME);
		return 0;
	}
	say(r, LOG_NOTICE, "systemd-resolved (re)started; applying the settings of %s again",
	    RESOLV_LINK_NAME);
	r->applied = mfree_str(r->applied);
	r->no_such_link = 0;
	r->apply = resolved_apply_free(r->apply);
	r->again = false;
	resolved_sync(r);
	return 0;
}

static void bus_detach(struct resolv *r)
{
	r->apply = resolved_apply_free(r->apply);
	r->owner_slot = sd_bus_slot_unref(r->owner_slot);
	r->disconnect_slot = sd_bus_slot_unref(r->disconnect_slot);
	if (r->bus) {
		sd_bus_detach_event(r->bus);
		r->bus = sd_bus_flush_close_unref(r->bus);
	}
}

/* resolved_sync() connects again (with backoff) when there is no bus. */
static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct resolv *r = userdata;

	say(r, LOG_WARNING, "Lost the system bus; reconnecting");
	bus_detach(r);
	r->applied = mfree_str(r->applied);
	retry_later(r);
	return 0;
}

static int bus_attach(struct resolv *r)
{
	_cleanup_(freep) char *err = NULL;
	int res;

	if (!r->bus) {
		res = bus_connect(false, &r->bus, &err);
		if (res < 0)
			return res;
	}
	res = sd_bus_attach_event(r->bus, r->event, SD_EVENT_PRIORITY_NORMAL);
	/* Stop reverts the link after the loop has exited: keep the bus. */
	if (res >= 0)
		res = sd_bus_set_close_on_exit(r->bus, false);
	if (res >= 0)
		res = sd_bus_add_match_async(r->bus, &r->owner_slot,
					     "type='signal',sender='org.freedesktop.DBus',"
					     "path='/org/freedesktop/DBus',"
					     "interface='org.freedesktop.DBus',"
					     "member='NameOwnerChanged',"
					     "arg0='org.freedesktop.resolve1'",
					     on_owner_changed, NULL, r);
	if (res >= 0)
		res = sd_bus_match_signal(r->bus, &r->disconnect_slot, "org.freedesktop.DBus.Local",
					  "/org/freedesktop/DBus/Local",
					  "org.freedesktop.DBus.Local", "Disconnected",
					  on_disconnected, r);
	if (res < 0) {
		bus_detach(r);
		return res;
	}
	return 0;
}

/* ---- direct mode -------------------------------------------------------- */

static void direct_watch(struct resolv *r);

static void direct_sync(struct resolv *r)
{
	_cleanup_(resolv_conf_freep) struct resolv_conf *c = NULL;
	_cleanup_(freep) char *original = NULL, *rendered = NULL, *err = NULL;
	size_t len;
	int res;

	if (r->n_servers == 0 || r->direct_gave_up)
		return;
	res = resolv_direct_read_original(&direct_paths, &original, &len, &err);
	if (res >= 0)
		res = resolv_conf_parse(original, len, &c, &err);
	if (res >= 0)
		res = resolv_conf_render(c, r->servers, r->n_servers, r->domain,
					 RESOLV_CONF_BACKUP_PATH, &rendered);
	if (res >= 0)
		res = resolv_direct_write(&direct_paths, rendered, &err);
	if (res < 0) {
		say(r, LOG_ERR, "Not changing %s: %s", RESOLV_CONF_PATH, err ?: strerror(-res));
		r->attempted = true;
		return;
	}
	if (!streq_ptr(r->written, rendered)) {
		_cleanup_(freep) char *text = servers_text(r->servers, r->n_servers);

		say(r, LOG_INFO,
		    "Wrote %s%s: nameserver %s first, then the host's own; the original is %s",
		    RESOLV_CONF_PATH, res > 0 ? " in place (it is a mount point)" : "",
		    text ?: "?", RESOLV_CONF_BACKUP_PATH);
	}
	free(r->written);
	r->written = TAKE_PTR(rendered);
	direct_watch(r);
}

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct resolv *r = userdata;
	_cleanup_(freep) char *now = NULL;
	uint64_t t = now_usec(CLOCK_MONOTONIC);
	size_t len;

	r->settle = sd_event_source_disable_unref(r->settle);
	if (!r->written || r->direct_gave_up)
		return 0;
	if (resolv_read_file(RESOLV_CONF_PATH, RESOLV_CONF_MAX_SIZE, &now, &len) >= 0 &&
	    streq(now, r->written)) {
		direct_watch(r); /* ours, maybe a new inode: watch it again */
		return 0;
	}
	if (t - r->reapply_since > REAPPLY_WINDOW_USEC) {
		r->reapply_since = t;
		r->reapplies = 0;
	}
	if (++r->reapplies > REAPPLY_MAX) {
		say(r, LOG_ERR,
		    "%s keeps being rewritten by another program: leaving it to that program; "
		    "cluster names may not resolve (configure that program, or use "
		    "systemd-resolved)",
		    RESOLV_CONF_PATH);
		r->direct_gave_up = true;
		return 0;
	}
	say(r, LOG_WARNING,
	    "Another program rewrote %s: taking its servers as the host's own and putting the "
	    "cluster DNS first again",
	    RESOLV_CONF_PATH);
	direct_sync(r);
	return 0;
}

static int on_conf_event(sd_event_source *s, const struct inotify_event *e, void *userdata)
{
	struct resolv *r = userdata;
	const char *base = strrchr(RESOLV_CONF_PATH, '/') + 1;

	if (s == r->watch_dir && (e->len == 0 || !streq(e->name, base)))
		return 0;
	/* Writers truncate, then write: look once things have settled. */
	r->settle = sd_event_source_disable_unref(r->settle);
	if (sd_event_add_time_relative(r->event, &r->settle, CLOCK_MONOTONIC, WATCH_SETTLE_USEC, 0,
				       on_settled, r) < 0)
		say(r, LOG_ERR, "Cannot arm the %s watch timer", RESOLV_CONF_PATH);
	return 0;
}

/* The directory (renames over the file) and the file itself (in-place
 * writes, which a bind-mounted file only shows on its own inode). */
static void direct_watch(struct resolv *r)
{
	_cleanup_(freep) char *dir = strndup(RESOLV_CONF_PATH,
					     (size_t)(strrchr(RESOLV_CONF_PATH, '/') -
						      RESOLV_CONF_PATH));
	int res = 0;

	if (!dir)
		return;
	if (!r->watch_dir)
		res = sd_event_add_inotify(r->event, &r->watch_dir, dir,
					   IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_CLOSE_WRITE,
					   on_conf_event, r);
	r->watch_file = sd_event_source_disable_unref(r->watch_file);
	if (res >= 0)
		res = sd_event_add_inotify(r->event, &r->watch_file, RESOLV_CONF_PATH,
					   IN_CLOSE_WRITE | IN_MODIFY, on_conf_event, r);
	if (res < 0)
		say(r, LOG_WARNING, "Cannot watch %s for other writers: %s", RESOLV_CONF_PATH,
		    strerror(-res));
}

/* Why direct mode must not run here, or NULL. */
static char *direct_refusal(void)
{
	_cleanup_(freep) char *text = NULL, *target = NULL;
	size_t len;

	target = realpath(RESOLV_CONF_PATH, NULL);
	if (target && strncmp(target, RESOLVED_RUN_DIR, strlen(RESOLVED_RUN_DIR)) == 0)
		return strdup_printf("%s is systemd-resolved's (-> %s): use --dns=resolved",
				     RESOLV_CONF_PATH, target);
	if (access(RESOLV_CONF_PATH, F_OK) < 0)
		return strdup_printf("%s does not exist", RESOLV_CONF_PATH);
	if (resolv_file_immutable(RESOLV_CONF_PATH))
		return strdup_printf("%s is immutable (chattr +i); kube-annex never changes that",
				     RESOLV_CONF_PATH);
	/* NetworkManager not running (else networkmanager mode took over):
	 * it rewrites the file when it starts. */
	if (resolv_read_file(RESOLV_CONF_PATH, RESOLV_CONF_MAX_SIZE, &text, &len) >= 0 &&
	    resolv_conf_by_networkmanager(text, len))
		return strdup_printf("%s is written by NetworkManager, which would overwrite it "
				     "when it runs again: start NetworkManager, and kube-annex "
				     "configures its dnsmasq plugin instead (--dns=networkmanager)",
				     RESOLV_CONF_PATH);
	return NULL;
}

/* ---- the host ----------------------------------------------------------- */

static void sync_host(struct resolv *r)
{
	r->retry = sd_event_source_disable_unref(r->retry);
	switch (r->mode) {
	case RESOLV_MODE_RESOLVED:
		resolved_sync(r);
		break;
	case RESOLV_MODE_DIRECT:
		direct_sync(r);
		break;
	case RESOLV_MODE_NETWORKMANAGER:
		if (r->n_servers)
			resolv_nm_set_servers(r->nm, r->servers, r->n_servers);
		break;
	default:
		break;
	}
}

/* networkmanager mode, if NetworkManager is the resolver and it can run;
 * else *ret_why says why not. */
static enum resolv_nm_verdict try_nm(struct resolv *r, bool allow_switch, char **ret_why)
{
	enum resolv_nm_verdict v;
	sd_bus *bus = NULL;
	bool switch_mode = false;
	int res;

	v = resolv_nm_detect(allow_switch, &bus, &switch_mode, ret_why);
	if (v != RESOLV_NM_USE)
		return v;
	res = resolv_nm_new(r->event, bus, &nm_paths, switch_mode,
			    (const char *const *)r->route_domains, r->n_route_domains,
			    r->report, r->userdata, &r->nm);
	if (res < 0) {
		*ret_why = strdup_printf("cannot watch NetworkManager on the bus: %s",
					 strerror(-res));
		return RESOLV_NM_BLOCKED;
	}
	return RESOLV_NM_USE;
}

/* auto: NetworkManager's dnsmasq when it is the resolver; else whether to
 * tell the operator about networkmanager mode (*ret_why) or not (NULL). */
static bool auto_nm(struct resolv *r, char **ret_why)
{
	_cleanup_(freep) char *why = NULL;

	switch (try_nm(r, false, &why)) {
	case RESOLV_NM_USE:
		return true;
	case RESOLV_NM_BLOCKED:
		*ret_why = TAKE_PTR(why);
		return false;
	default:
		return false;
	}
}

static enum resolv_mode pick_mode(struct resolv *r, enum resolv_mode asked)
{
	_cleanup_(freep) char *why = NULL, *err = NULL, *rcmode = NULL;

	if (asked == RESOLV_MODE_OFF)
		return RESOLV_MODE_OFF;
	if (asked == RESOLV_MODE_NETWORKMANAGER) {
		if (try_nm(r, true, &why) == RESOLV_NM_USE)
			return RESOLV_MODE_NETWORKMANAGER;
		say(r, LOG_ERR, "--dns=networkmanager: the host's DNS is left alone: %s",
		    why ?: "?");
		return RESOLV_MODE_OFF;
	}
	if (asked == RESOLV_MODE_DIRECT) {
		switch (try_nm(r, true, &why)) {
		case RESOLV_NM_USE:
			say(r, LOG_NOTICE,
			    "--dns=direct: NetworkManager writes %s; configuring its dnsmasq plugin "
			    "instead of rewriting its file (networkmanager mode)",
			    RESOLV_CONF_PATH);
			return RESOLV_MODE_NETWORKMANAGER;
		case RESOLV_NM_BLOCKED:
			say(r, LOG_ERR,
			    "--dns=direct: not touching the resolver: NetworkManager writes %s and "
			    "would overwrite it, and its dnsmasq plugin cannot be used: %s",
			    RESOLV_CONF_PATH, why ?: "?");
			return RESOLV_MODE_OFF;
		default:
			why = mfree_str(why);
			break;
		}
		why = direct_refusal();
		if (why) {
			say(r, LOG_ERR, "--dns=direct: not touching the resolver: %s", why);
			return RESOLV_MODE_OFF;
		}
		return RESOLV_MODE_DIRECT;
	}
	if (bus_connect(true, &r->bus, &err) < 0) {
		if (asked == RESOLV_MODE_RESOLVED)
			say(r, LOG_ERR, "--dns=resolved: systemd-resolved is not available (%s); "
					"the host's DNS is left alone",
			    err ?: "?");
		else if (auto_nm(r, &why))
			return RESOLV_MODE_NETWORKMANAGER;
		else if (why)
			say(r, LOG_NOTICE,
			    "Cluster DNS not configured: %s. To resolve *.%s on this host, opt in "
			    "to --dns=networkmanager (kube-annex adds the cluster domain to "
			    "NetworkManager's dnsmasq plugin, turning it on; undone on stop); "
			    "--dns=off silences this",
			    why, r->domain);
		else
			say(r, LOG_NOTICE,
			    "Cluster DNS not configured: systemd-resolved is not available (%s). "
			    "To resolve *.%s on this host, run systemd-resolved with %s -> "
			    "../run/systemd/resolve/stub-resolv.conf, or opt in to --dns=direct "
			    "(rewrites %s); --dns=off silences this",
			    err ?: "?", r->domain, RESOLV_CONF_PATH, RESOLV_CONF_PATH);
		return RESOLV_MODE_OFF;
	}
	why = resolved_not_in_path();
	rcmode = resolved_resolv_conf_mode(r->bus);
	if (why && asked == RESOLV_MODE_AUTO) {
		_cleanup_(freep) char *nm_why = NULL;

		bus_detach(r);
		if (auto_nm(r, &nm_why))
			return RESOLV_MODE_NETWORKMANAGER;
		say(r, LOG_NOTICE,
		    "Cluster DNS not configured: systemd-resolved runs (resolv.conf mode %s) but "
		    "is not safe to use: %s. To resolve *.%s on this host, point %s at "
		    "../run/systemd/resolve/stub-resolv.conf (or add 'resolve' to nsswitch.conf's "
		    "hosts: line) and restart kube-annex, or use --dns=resolved or --dns=%s "
		    "deliberately%s%s%s; --dns=off silences this",
		    rcmode ?: "unknown", why, r->domain, RESOLV_CONF_PATH,
		    nm_why ? "networkmanager" : "direct", nm_why ? " (NetworkManager: " : "",
		    nm_why ? nm_why : "", nm_why ? ")" : "");
		return RESOLV_MODE_OFF;
	}
	if (why)
		say(r, LOG_WARNING, "--dns=resolved although %s", why);
	return RESOLV_MODE_RESOLVED;
}

/* The cluster domain, then the reverse zones of the Service CIDRs (too
 * many: said, and left out). */
static int route_domains(struct resolv *r, const char *service_cidrs)
{
	char **zones = NULL;
	size_t n = 0;
	int res = 0;

	if (service_cidrs) {
		res = reverse_zones(service_cidrs, &zones, &n);
		if (res == -ENOMEM)
			return res;
		if (res < 0)
			say(r, LOG_WARNING,
			    "--service-cidr=%s: more than %u reverse zones; reverse lookups of "
			    "ClusterIPs do not go to the cluster DNS",
			    service_cidrs, RESOLV_MAX_REVERSE_ZONES);
	}
	r->route_domains = calloc(n + 1, sizeof(*r->route_domains));
	if (!r->route_domains) {
		for (size_t i = 0; i < n; i++)
			free(zones[i]);
		free(zones);
		return -ENOMEM;
	}
	r->route_domains[0] = strdup(r->domain);
	if (n)
		memcpy(r->route_domains + 1, zones, n * sizeof(*zones));
	free(zones);
	r->n_route_domains = 1 + n;
	return r->route_domains[0] ? 0 : -ENOMEM;
}

int resolv_new(sd_event *event, const struct resolv_options *o, resolv_report_fn fn,
	       void *userdata, struct resolv **ret)
{
	struct resolv *r;
	_cleanup_(freep) char *err = NULL;
	enum resolv_mode asked = RESOLV_MODE_AUTO;
	int res;

	res = resolv_options_check(o, &err);
	if (res < 0) {
		resolv_report(fn, userdata, LOG_ERR, "%s", err ?: "invalid DNS options");
		return res;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->event = sd_event_ref(event);
	r->report = fn;
	r->userdata = userdata;
	r->domain = strdup(o->cluster_domain ?: RESOLV_DEFAULT_DOMAIN);
	res = split_service(o->service ?: RESOLV_DEFAULT_SERVICE, &r->service_ns, &r->service_name);
	if (!r->domain || res < 0) {
		resolv_free(r);
		return -ENOMEM;
	}
	/* Lower case: resolved and glibc compare domains without case anyway. */
	for (char *p = r->domain; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
	res = route_domains(r, o->service_cidrs);
	if (res < 0) {
		resolv_free(r);
		return res;
	}
	(void)parse_ips(o->link_addresses ?: RESOLV_DEFAULT_LINK_ADDRESS, r->link_addrs,
			MAX_LINK_ADDRS, true, &r->n_link_addrs);
	if (o->addresses) {
		(void)parse_ips(o->addresses, r->servers, KUBE_MAX_IPS, false, &r->n_servers);
		r->fixed = true;
	}
	if (o->mode)
		asked = (enum resolv_mode)parse_mode(o->mode);

	r->mode = pick_mode(r, asked);
	if (r->mode == RESOLV_MODE_RESOLVED && bus_attach(r) < 0) {
		say(r, LOG_ERR, "Cannot watch systemd-resolved on the bus; the host's DNS is "
				"left alone");
		bus_detach(r);
		r->mode = RESOLV_MODE_OFF;
	}
	if (r->mode != RESOLV_MODE_OFF) {
		say(r, LOG_INFO, "DNS mode %s%s: names in ~%s%s%s%s from %s", mode_names[r->mode],
		    asked == RESOLV_MODE_AUTO ? " (auto)" : "", r->domain,
		    r->n_route_domains > 1 ? " and the Service CIDRs' reverse zones ~" : "",
		    r->n_route_domains > 1 ? r->route_domains[1] : "",
		    r->n_route_domains > 2 ? ", ..." : "",
		    r->fixed ? o->addresses : o->service ?: RESOLV_DEFAULT_SERVICE);
		if (r->fixed)
			sync_host(r);
	}
	*ret = r;
	return 0;
}

enum resolv_mode resolv_get_mode(const struct resolv *r)
{
	return r ? r->mode : RESOLV_MODE_OFF;
}

bool resolv_settled(const struct resolv *r)
{
	if (!r || r->mode == RESOLV_MODE_OFF)
		return true;
	if (r->n_servers == 0)
		return r->service_seen; /* not found, or without a ClusterIP: said so */
	if (r->attempted)
		return true;
	if (r->mode == RESOLV_MODE_DIRECT)
		return r->written || r->direct_gave_up;
	if (r->mode == RESOLV_MODE_NETWORKMANAGER)
		return resolv_nm_settled(r->nm);
	return r->applied;
}

size_t resolv_masquerade_sources(const struct resolv *r, const struct kube_ip **ret)
{
	if (!r || r->mode != RESOLV_MODE_RESOLVED) {
		*ret = NULL;
		return 0;
	}
	*ret = r->link_addrs;
	return r->n_link_addrs;
}

/* ---- stop and cleanup --------------------------------------------------- */

static int cleanup_link(sd_bus *bus, resolv_report_fn fn, void *userdata)
{
	_cleanup_(freep) char *err = NULL;
	unsigned ifindex = if_nametoindex(RESOLV_LINK_NAME);
	sd_bus *own = NULL;
	bool reverted = false;
	int r;

	if (ifindex == 0)
		return 0;
	if (!bus && bus_connect(true, &own, &err) >= 0)
		bus = own;
	if (bus) {
		free(err);
		err = NULL;
		reverted = resolved_revert_link(bus, (int)ifindex, &err) >= 0;
		if (!reverted)
			resolv_report(fn, userdata, LOG_WARNING,
			       "systemd-resolved: %s; deleting %s drops its settings anyway",
			       err ?: "?", RESOLV_LINK_NAME);
	}
	sd_bus_flush_close_unref(own);
	free(err);
	err = NULL;
	/* Deleting the link drops whatever resolved still keeps for it. */
	r = resolv_link_delete(RESOLV_LINK_NAME, &err);
	if (r < 0) {
		resolv_report(fn, userdata, LOG_ERR, "Cannot delete link %s: %s", RESOLV_LINK_NAME,
		       err ?: strerror(-r));
		return r;
	}
	resolv_report(fn, userdata, LOG_INFO, "Deleted link %s%s", RESOLV_LINK_NAME,
	       reverted ? " (systemd-resolved's settings for it reverted first)" : "");
	return 0;
}

static int cleanup_direct(resolv_report_fn fn, void *userdata)
{
	_cleanup_(freep) char *err = NULL;
	bool had_backup = access(RESOLV_CONF_BACKUP_PATH, F_OK) >= 0, restored;
	int r;

	r = resolv_direct_restore(&direct_paths, &restored, &err);
	if (r < 0) {
		resolv_report(fn, userdata, LOG_ERR, "Cannot restore %s: %s", RESOLV_CONF_PATH,
		       err ?: strerror(-r));
		return r;
	}
	if (restored)
		resolv_report(fn, userdata, LOG_INFO, "Restored %s from %s", RESOLV_CONF_PATH,
		       RESOLV_CONF_BACKUP_PATH);
	else if (had_backup)
		resolv_report(fn, userdata, LOG_NOTICE,
		       "%s was rewritten by another program since kube-annex changed it: kept "
		       "it, removed the stale %s",
		       RESOLV_CONF_PATH, RESOLV_CONF_BACKUP_PATH);
	return 0;
}

static int cleanup_all(sd_bus *bus, resolv_report_fn fn, void *userdata)
{
	int r = cleanup_link(bus, fn, userdata);
	int q = cleanup_direct(fn, userdata);
	/* Connects to NetworkManager only when it removed a file of ours. */
	int n = resolv_nm_cleanup(NULL, &nm_paths, fn, userdata);

	return r < 0 ? r : q < 0 ? q : n;
}

int resolv_cleanup(resolv_report_fn fn, void *userdata)
{
	return cleanup_all(NULL, fn, userdata);
}

void resolv_stop(struct resolv *r)
{
	if (!r)
		return;
	r->apply = resolved_apply_free(r->apply);
	r->responder = resolv_responder_free(r->responder);
	r->retry = sd_event_source_disable_unref(r->retry);
	r->settle = sd_event_source_disable_unref(r->settle);
	r->watch_dir = sd_event_source_disable_unref(r->watch_dir);
	r->watch_file = sd_event_source_disable_unref(r->watch_file);
	if (r->mode == RESOLV_MODE_OFF)
		return;
	/* On its own bus connection; cleanup_all() then finds nothing left. */
	resolv_nm_stop(r->nm);
	/* The event loop's exit closes an attached bus: connect again then. */
	(void)cleanup_all(r->bus && sd_bus_is_open(r->bus) > 0 ? r->bus : NULL, r->report,
			  r->userdata);
	r->ifindex = 0;
	r->link_up = false;
}

struct resolv *resolv_free(struct resolv *r)
{
	if (!r)
		return NULL;
	bus_detach(r);
	resolv_nm_free(r->nm);
	resolv_responder_free(r->responder);
	sd_event_source_disable_unref(r->retry);
	sd_event_source_disable_unref(r->settle);
	sd_event_source_disable_unref(r->watch_dir);
	sd_event_source_disable_unref(r->watch_file);
	sd_event_unref(r->event);
	free(r->domain);
	for (size_t i = 0; i < r->n_route_domains; i++)
		free(r->route_domains[i]);
	free(r->route_domains);
	free(r->service_ns);
	free(r->service_name);
	free(r->applied);
	free(r->written);
	free(r);
	return NULL;
}

/* ---- status ------------------------------------------------------------- */

void resolv_get_status(const struct resolv *r, struct resolv_status *ret)
{
	*ret = (struct resolv_status){ .mode = RESOLV_MODE_OFF };
	if (!r)
		return;
	*ret = (struct resolv_status){
		.mode = r->mode,
		.domain = r->domain,
		.service_ns = r->service_ns,
		.service_name = r->service_name,
		.fixed = r->fixed,
		.servers = r->servers,
		.n_servers = r->n_servers,
		.configured = r->mode == RESOLV_MODE_RESOLVED ? r->applied && r->link_up :
			      r->mode == RESOLV_MODE_DIRECT   ? r->written && !r->direct_gave_up :
			      r->mode == RESOLV_MODE_NETWORKMANAGER ? resolv_nm_configured(r->nm) :
								false,
		.link_kind = r->mode == RESOLV_MODE_RESOLVED && r->ifindex ? r->link_kind : NULL,
		.link_addrs = r->link_addrs,
		.n_link_addrs = r->n_link_addrs,
	};
}

static size_t nameservers_of(const char *text, size_t len, struct kube_ip *ret, size_t max)
{
	_cleanup_(resolv_conf_freep) struct resolv_conf *c = NULL;
	size_t n = 0;

	if (resolv_conf_parse(text, len, &c, NULL) < 0)
		return 0;
	for (size_t i = 0; i < c->n_nameservers && n < max; i++) {
		_cleanup_(freep) char *addr = strndup(c->nameservers[i],
						      strcspn(c->nameservers[i], "%"));

		if (addr && kube_ip_parse(addr, &ret[n]) >= 0)
			n++;
	}
	return n;
}

size_t resolv_host_nameservers(struct kube_ip *ret, size_t max)
{
	_cleanup_(freep) char *text = NULL, *uplink = NULL;
	_cleanup_(resolv_conf_freep) struct resolv_conf *c = NULL;
	size_t len = 0;

	if (resolv_direct_read_original(&direct_paths, &text, &len, NULL) < 0)
		return 0;
	if (resolv_conf_parse(text, len, &c, NULL) >= 0 && resolv_conf_only_stub(c) &&
	    resolv_read_file(RESOLVED_RUN_DIR "resolv.conf", RESOLV_CONF_MAX_SIZE, &uplink,
			     &len) >= 0)
		return nameservers_of(uplink, len, ret, max);
	/* NetworkManager's dnsmasq: the servers it was given are in this file. */
	if (c && resolv_conf_only_nameserver(c, RESOLV_NM_LISTEN_ADDRESS) &&
	    resolv_read_file(NM_NO_STUB_RESOLV_CONF, RESOLV_CONF_MAX_SIZE, &uplink, &len) >= 0)
		return nameservers_of(uplink, len, ret, max);
	return nameservers_of(text, strlen(text), ret, max);
}
