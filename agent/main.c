/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kube-annex: mirror a cluster's Service networking onto a host that is not
 * a node. One process, one thread, one sd-event loop:
 *
 *   API server --(kube/)--> model/ --(dirty Services)--> nft/ --> kernel
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <systemd/sd-event.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/flows.h"
#include "agent/operate.h"
#include "agent/service.h"
#include "kube/kube.h"
#include "lib/histogram.h"
#include "lib/log.h"
#include "model/model.h"
#include "nft/nft.h"
#include "resolv/resolv.h"
#include "systemd/notify.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define RETRY_MIN_USEC (100 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (10 * USEC_PER_SEC)
/* How often the ruleset generation is compared with what the monitor saw. */
#define VERIFY_INTERVAL_USEC (30 * USEC_PER_SEC)

/*
 * The settings in effect: defaults, then the configuration file, then the
 * command line (agent/config.c); a reload reads the file again and applies
 * the same command line over it. The arg_* below point into arg_config.
 */
static struct config_args arg_args;
static struct config *arg_config;
static char *arg_config_path; /* the file read; NULL: none */
static bool arg_keep_rules;
static struct resolv_options arg_dns; /* dns, cluster-domain, dns-* */
/* Syncs start at least this long after the previous one ended: a burst
 * right after a sync is folded into the next one. */
static uint64_t arg_min_sync_interval_usec = 5 * USEC_PER_MSEC;
static const char *arg_zone;
static bool arg_external_ips = true;
static bool arg_gateway;

/* Takes c and path. */
static void use_config(struct config *c, char *path)
{
	config_free(arg_config);
	free(arg_config_path);
	arg_config = c;
	arg_config_path = path;
	arg_keep_rules = c->keep_rules;
	config_dns_options(c, &arg_dns);
	arg_min_sync_interval_usec = c->min_sync_interval_usec;
	arg_zone = c->zone;
	arg_external_ips = c->external_ips;
	arg_gateway = c->gateway;
	log_set_max_level(c->verbose ? LOG_DEBUG : LOG_INFO);
}


/* ---- sync -------------------------------------------------------------- */

/* One entry the datapath refuses must not hold back all the others. */
static int stage_one(const struct model_key *key, const struct model_entry *entry, void *userdata)
{
	struct agent *a = userdata;
	int r = nft_stage(a->nft, key, entry);

	if (r >= 0 && flows_note(a, key, entry) < 0)
		return -ENOMEM;
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		log_warning("Not programming %s: %s, ignoring",
			    entry ? entry->comment : "a removed service port", strerror(-r));
	else if (r > 0)
		log_notice("%s: more than %u endpoints, programmed without session affinity",
			   entry->comment, NFT_MAX_AFFINITY_BACKENDS);
	return 0;
}

static void schedule_sync(struct agent *a);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	schedule_sync(userdata);
	return 0;
}

static void sync_failed(struct agent *a, int r, const char *error)
{
	uint64_t d = a->retry_usec ? a->retry_usec : RETRY_MIN_USEC;

	log_error("Failed to program nftables: %s%s%s", strerror(-r), error ? ": " : "",
		  error ? error : "");
	operate_sync_failed(a, error ? error : strerror(-r));
	/* The committed copy is gone: rebuild everything on the next try. */
	nft_reset(a->nft);
	model_mark_all_dirty(a->model);
	a->retry_usec = d * 2 > RETRY_MAX_USEC ? RETRY_MAX_USEC : d * 2;
	a->retry_source = sd_event_source_disable_unref(a->retry_source);
	if (sd_event_add_time_relative(a->event, &a->retry_source, CLOCK_MONOTONIC, d, 0, on_retry,
				       a) < 0)
		log_error("Failed to arm the sync retry timer");
}

static void report_first_sync(struct agent *a, uint64_t took)
{
	struct model_stats ms;

	model_get_stats(a->model, &ms);
	log_info("Programmed %zu of %zu Services (%zu service ports, %zu endpoints) "
		 "%.0f ms after start; sync took %.1f ms",
		 ms.services_proxied, ms.services, ms.entries, ms.endpoints,
		 (double)(a->last_sync_usec - a->start_usec) / USEC_PER_MSEC,
		 (double)took / USEC_PER_MSEC);
	a->ready = true;
}

/*
 * Per sync, into the latency histograms and the debug log: how long it
 * took, and how long the oldest change in it waited since its event
 * arrived ("event -> kernel"). When EndpointSlices carry
 * endpoints.kubernetes.io/last-change-trigger-time, also the time since
 * the change happened in the cluster (kube-proxy's network programming
 * latency).
 */
static void record_sync(struct agent *a, const struct model_stats *ms, uint64_t t0)
{
	double took = (double)(a->last_sync_usec - t0) / USEC_PER_MSEC;
	uint64_t waited = a->first_change_usec ? a->last_sync_usec - a->first_change_usec : 0;
	uint64_t now_rt = now_usec(CLOCK_REALTIME);
	uint64_t cluster = ms->newest_trigger_usec && ms->newest_trigger_usec < now_rt ?
		now_rt - ms->newest_trigger_usec : 0;
	char extra[64] = "";

	if (a->ready && waited)
		histogram_add(&a->event_latency, waited);
	if (a->ready && cluster)
		histogram_add(&a->cluster_latency, cluster);
	if (cluster)
		snprintf(extra, sizeof(extra), ", cluster change->kernel %.1f ms",
			 (double)cluster / USEC_PER_MSEC);
	log_debug("Synced in %.3f ms, event->kernel %.3f ms%s: %zu services proxied, %zu endpoints",
		  took, (double)waited / USEC_PER_MSEC, extra, ms->services_proxied, ms->endpoints);
}

static void sync_now(struct agent *a)
{
	_cleanup_(freep) char *error = NULL;
	struct model_stats ms;
	uint64_t t0 = now_usec(CLOCK_MONOTONIC);
	int r;

	r = model_flush_changes(a->model, stage_one, a);
	if (r < 0) {
		sync_failed(a, r, "staging changes");
		return;
	}
	if (nft_pending(a->nft)) {
		r = nft_commit(a->nft, &error);
		if (r < 0) {
			sync_failed(a, r, error);
			return;
		}
	}
	a->retry_usec = 0;
	a->last_sync_usec = now_usec(CLOCK_MONOTONIC);
	model_get_stats(a->model, &ms);
	record_sync(a, &ms, t0);
	a->first_change_usec = 0;
	if (!a->ready)
		report_first_sync(a, a->last_sync_usec - t0);
	operate_sync_done(a, t0);
	service_synced(a);
	flows_committed(a);
}

static int on_sync(sd_event_source *s, void *userdata)
{
	struct agent *a = userdata;

	sd_event_source_set_enabled(s, SD_EVENT_OFF);
	sync_now(a);
	return 0;
}

/*
 * Syncs run at idle priority: every event already readable is folded into
 * the model first, so a burst becomes one commit without a fixed delay.
 * Nothing is programmed before both kinds have completed a first list.
 */
static void schedule_sync(struct agent *a)
{
	if (!a->first_change_usec)
		a->first_change_usec = now_usec(CLOCK_MONOTONIC);
	/* ServiceCIDRs count as synced after their first LIST, or at their
	 * first failure (none in the cluster, 403, an error being retried): the
	 * first commit has the drop rules, and no rebuild follows it, but an
	 * optional API never keeps the Services unprogrammed. */
	if (!a->synced[KUBE_KIND_SERVICE] || !a->synced[KUBE_KIND_ENDPOINTS] ||
	    !a->synced[KUBE_KIND_SERVICE_CIDR])
		return;
	if (!model_has_dirty(a->model) && a->ready && !nft_pending(a->nft))
		return;
	if (a->ready && arg_min_sync_interval_usec) {
		uint64_t earliest = a->last_sync_usec + arg_min_sync_interval_usec;

		if (now_usec(CLOCK_MONOTONIC) < earliest) {
			int enabled = SD_EVENT_OFF;

			sd_event_source_get_enabled(a->delay_source, &enabled);
			if (enabled == SD_EVENT_OFF) {
				sd_event_source_set_time(a->delay_source, earliest);
				sd_event_source_set_enabled(a->delay_source, SD_EVENT_ONESHOT);
			}
			return;
		}
	}
	sd_event_source_set_enabled(a->sync_source, SD_EVENT_ONESHOT);
}

static int on_delay(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	sd_event_source_set_enabled(a->sync_source, SD_EVENT_ONESHOT);
	return 0;
}

/* ---- self-healing ------------------------------------------------------ */

/* Someone else changed our tables: rebuild them from the model at once. */
static void restore(struct agent *a, const char *how)
{
	a->restorations++;
	log_warning("kube-annex's nftables tables were changed from outside (%s); restoring them "
		    "(restoration #%" PRIu64 ")",
		    how, a->restorations);
	operate_full_sync_needed(a);
	nft_reset(a->nft);
	model_mark_all_dirty(a->model);
	schedule_sync(a);
}

static void monitor_result(struct agent *a, int r, const char *how)
{
	if (r < 0)
		log_warning("Failed to read nftables notifications: %s", strerror(-r));
	else if (r > 0 && a->ready)
		restore(a, how);
}

static int on_monitor(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct agent *a = userdata;

	monitor_result(a, nft_monitor_process(a->monitor), "notification");
	return 0;
}

static int on_verify(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	monitor_result(a, nft_monitor_verify(a->monitor), "generation check");
	sd_event_source_set_time_relative(s, VERIFY_INTERVAL_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

static int monitor_init(struct agent *a)
{
	int r = nft_monitor_new(a->nft, &a->monitor);

	if (r < 0)
		return r;
	r = sd_event_add_io(a->event, &a->monitor_source, nft_monitor_fd(a->monitor), EPOLLIN,
			    on_monitor, a);
	if (r < 0)
		return r;
	/* Before the API's events: a restore must not wait behind them. */
	sd_event_source_set_priority(a->monitor_source, SD_EVENT_PRIORITY_IMPORTANT);
	return sd_event_add_time_relative(a->event, &a->verify_source, CLOCK_MONOTONIC,
					  VERIFY_INTERVAL_USEC, USEC_PER_SEC, on_verify, a);
}

/* ---- API events -------------------------------------------------------- */

static void on_service_upsert(void *userdata, struct kube_service *svc)
{
	struct agent *a = userdata;
	const struct kube_service *old = model_service_get(a->model, svc->namespace, svc->name);
	const char *old_note = old ? model_service_note(old) : NULL;
	const char *note = model_service_note(svc);

	/* Say it once when it starts to apply, not on every update. */
	if (note && !streq_ptr(note, old_note))
		log_info("Service %s/%s: %s", svc->namespace, svc->name, note);
	operate_service_upsert(a, old, svc);
	resolv_service_update(a->resolv, svc);
	if (model_service_set(a->model, svc) < 0)
		log_error("Out of memory storing a Service");
	schedule_sync(a);
}

static void on_service_delete(void *userdata, const char *ns, const char *name)
{
	struct agent *a = userdata;

	resolv_service_delete(a->resolv, ns, name);
	operate_service_delete(a, ns, name);
	model_service_delete(a->model, ns, name);
	schedule_sync(a);
}

static void on_endpoints_upsert(void *userdata, const char *ns, const char *name,
				struct kube_endpoint_slice **slices, size_t n)
{
	struct agent *a = userdata;

	operate_endpoints_upsert(a);
	if (model_endpoints_set(a->model, ns, name, slices, n) < 0)
		log_error("Out of memory storing endpoints %s/%s", ns, name);
	schedule_sync(a);
}

static void on_endpoints_delete(void *userdata, const char *ns, const char *name)
{
	struct agent *a = userdata;

	model_endpoints_delete(a->model, ns, name);
	schedule_sync(a);
}

static int set_service_cidrs(struct agent *a);

static struct kube_service_cidr **service_cidr_find(struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->n_service_cidrs; i++)
		if (streq(a->service_cidrs[i]->name, name))
			return &a->service_cidrs[i];
	return NULL;
}

static void service_cidrs_changed(struct agent *a)
{
	if (set_service_cidrs(a) < 0)
		log_error("Failed to apply the ServiceCIDRs: out of memory");
	schedule_sync(a);
}

static void on_service_cidr_upsert(void *userdata, struct kube_service_cidr *cidr)
{
	struct agent *a = userdata;
	struct kube_service_cidr **slot = service_cidr_find(a, cidr->name);

	if (slot) {
		kube_service_cidr_free(*slot);
		*slot = cidr;
	} else if (a->n_service_cidrs < KUBE_MAX_SERVICE_CIDR_OBJECTS) {
		a->service_cidrs[a->n_service_cidrs++] = cidr;
	} else {
		log_warning("Skipping ServiceCIDR %s: more than %u ServiceCIDRs", cidr->name,
			    KUBE_MAX_SERVICE_CIDR_OBJECTS);
		kube_service_cidr_free(cidr);
		return;
	}
	service_cidrs_changed(a);
}

static void on_service_cidr_delete(void *userdata, const char *name)
{
	struct agent *a = userdata;
	struct kube_service_cidr **slot = service_cidr_find(a, name);

	if (!slot)
		return;
	kube_service_cidr_free(*slot);
	*slot = a->service_cidrs[--a->n_service_cidrs];
	service_cidrs_changed(a);
}

static void on_synced(void *userdata, enum kube_kind kind)
{
	struct agent *a = userdata;
	static const char *const names[_KUBE_KIND_MAX] = {
		[KUBE_KIND_SERVICE] = "Services",
		[KUBE_KIND_ENDPOINTS] = "endpoints",
		[KUBE_KIND_SERVICE_CIDR] = "ServiceCIDRs",
	};

	if (!a->synced[kind] && (kind != KUBE_KIND_SERVICE_CIDR ||
				 kube_client_service_cidr_api(a->client, NULL)))
		log_info("Initial list of %s complete", names[kind]);
	a->synced[kind] = true;
	if (kind == KUBE_KIND_SERVICE)
		resolv_services_synced(a->resolv);
	schedule_sync(a);
}

static void on_bad_object(void *userdata, const char *kind, const char *ns, const char *name,
			  const char *error)
{
	struct agent *a = userdata;

	a->bad_objects++;
	/* cluster-scoped objects (ServiceCIDRs) have no namespace */
	log_warning("Skipping %s %s%s%s: %s", kind, ns, *ns ? "/" : "", name, error);
}

static void on_trouble(void *userdata, const char *what)
{
	operate_trouble(userdata, what);
	log_warning("%s", what);
}

static const struct kube_handlers handlers = {
	.service_upsert = on_service_upsert,
	.service_delete = on_service_delete,
	.endpoints_upsert = on_endpoints_upsert,
	.endpoints_delete = on_endpoints_delete,
	.service_cidr_upsert = on_service_cidr_upsert,
	.service_cidr_delete = on_service_cidr_delete,
	.synced = on_synced,
	.bad_object = on_bad_object,
	.trouble = on_trouble,
};

/* ---- cluster DNS on the host (resolv/) ---------------------------------- */

static void on_dns_report(void *userdata, int priority, const char *message)
{
	operate_dns_report(userdata, priority, message);
	log_msg(priority, "%s", message);
}

/* resolved mode: queries leave from kube-annex0's address, which the
 * datapath must masquerade after DNAT. */
static int dns_init(struct agent *a)
{
	const struct kube_ip *sources;
	size_t n;
	int r;

	r = resolv_new(a->event, &arg_dns, on_dns_report, a, &a->resolv);
	if (r < 0)
		return r;
	n = resolv_masquerade_sources(a->resolv, &sources);
	return n ? nft_set_masquerade_sources(a->nft, sources, n) : 0;
}

/* ---- scope ------------------------------------------------------------- */

/*
 * What to import: the namespaces and label selector, plus the cluster DNS
 * Service whenever kube-annex follows it (not with --dns=off or fixed
 * --dns-address), so that it is DNATed and the resolver finds it even
 * outside the scope.
 */
static void scope_from_config(struct kube_scope *ret)
{
	bool follows_dns = !streq_ptr(arg_dns.mode, "off") && !arg_dns.addresses;

	*ret = (struct kube_scope){
		.namespaces = arg_config->namespaces,
		.label_selector = arg_config->label_selector,
		.dns_service = !follows_dns ? NULL :
			       arg_dns.service ? arg_dns.service : RESOLV_DEFAULT_SERVICE,
	};
}

static void log_scope(const struct kube_scope *s, bool always)
{
	if (!s->namespaces && !s->label_selector && !always)
		return;
	log_info("Importing the Services of %s%s%s%s%s%s%s", s->namespaces ? "namespaces " : "",
		 s->namespaces ? s->namespaces : "all namespaces",
		 s->label_selector ? " with labels matching '" : "",
		 s->label_selector ? s->label_selector : "", s->label_selector ? "'" : "",
		 s->dns_service ? ", and the cluster DNS Service " : "",
		 s->dns_service ? s->dns_service : "");
}

/* ---- lifecycle --------------------------------------------------------- */

static void agent_done(struct agent *a)
{
	operate_free(a);
	/* The host's resolver first, while the datapath still carries it. */
	if (!arg_keep_rules)
		resolv_stop(a->resolv);
	a->resolv = resolv_free(a->resolv);
	a->client = kube_client_free(a->client);
	for (size_t i = 0; i < a->n_service_cidrs; i++)
		kube_service_cidr_free(a->service_cidrs[i]);
	a->n_service_cidrs = 0;
	a->monitor_source = sd_event_source_disable_unref(a->monitor_source);
	a->verify_source = sd_event_source_disable_unref(a->verify_source);
	a->monitor = nft_monitor_free(a->monitor);
	flows_free(a);
	a->sync_source = sd_event_source_disable_unref(a->sync_source);
	a->delay_source = sd_event_source_disable_unref(a->delay_source);
	a->retry_source = sd_event_source_disable_unref(a->retry_source);
	a->nft = nft_free(a->nft);
	a->model = model_free(a->model);
	a->config = kube_config_free(a->config);
	service_free(a);
	a->event = sd_event_unref(a->event);
}

/* ---- reload (SIGHUP) ----------------------------------------------------- */

static bool dns_options_equal(const struct resolv_options *x, const struct resolv_options *y)
{
	return streq_ptr(x->mode, y->mode) && streq_ptr(x->cluster_domain, y->cluster_domain) &&
	       streq_ptr(x->service, y->service) && streq_ptr(x->addresses, y->addresses) &&
	       streq_ptr(x->link_addresses, y->link_addresses) &&
	       streq_ptr(x->service_cidrs, y->service_cidrs);
}

/* The union of the ServiceCIDR objects, bounded by what nft takes. */
static void discovered_service_cidrs(struct agent *a, struct kube_cidr *ret, size_t *ret_n)
{
	/* Too many ranges: the rest are not dropped, which is what happens
	 * without any. */
	if (kube_service_cidrs_union(a->service_cidrs, a->n_service_cidrs, ret,
				     NFT_MAX_SERVICE_CIDRS, ret_n) < 0)
		log_warning("The ServiceCIDRs hold more than %u distinct ranges: only the first %u "
			    "drop traffic to unallocated addresses",
			    NFT_MAX_SERVICE_CIDRS, NFT_MAX_SERVICE_CIDRS);
}

/*
 * service-cidr (checked by agent/config.c) when given: explicit
 * configuration wins. Else the ServiceCIDR objects of the cluster, if it
 * has them. A change rebuilds the tables.
 */
static int set_service_cidrs(struct agent *a)
{
	struct kube_cidr cidrs[NFT_MAX_SERVICE_CIDRS];
	_cleanup_(freep) char *error = NULL;
	size_t n = 0;
	int r = 0;

	if (arg_config->service_cidrs) {
		r = nft_service_cidrs_parse(arg_config->service_cidrs, cidrs, &n, &error);
		a->service_cidr_source = "--service-cidr";
	} else {
		discovered_service_cidrs(a, cidrs, &n);
		a->service_cidr_source = n ? "ServiceCIDR objects" : NULL;
	}
	if (r >= 0)
		r = nft_set_service_cidrs(a->nft, cidrs, n);
	if (r >= 0 && nft_pending(a->nft))
		model_mark_all_dirty(a->model);
	return r;
}

/*
 * gateway: a change rebuilds the tables. Forwarding is the host's own
 * setting: kube-annex never writes the sysctls, it says when they make
 * gateway mode useless. Warned at start and at each reload.
 */
static void set_gateway(struct agent *a)
{
	static const int families[] = { AF_INET, AF_INET6 };

	nft_set_gateway(a->nft, arg_gateway);
	if (nft_pending(a->nft))
		model_mark_all_dirty(a->model);
	if (!arg_gateway)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
		const char *family = families[i] == AF_INET ? "IPv4" : "IPv6", *sysctl;
		int r = operate_forwarding(families[i], &sysctl);

		if (r == 0)
			log_warning("Gateway mode is on, but this host does not forward %s (%s = 0): "
				    "other machines' connections to %s Services are dropped. "
				    "kube-annex does not change sysctls; set %s = 1 if this host "
				    "is to be their gateway",
				    family, sysctl, family, sysctl);
		else if (r < 0 && r != -ENOENT)
			log_warning("Gateway mode: cannot read %s: %s", sysctl, strerror(-r));
	}
}

/* The DNS settings changed: undo the old ones, set up the new ones with the
 * DNS Service the model already has. The datapath is rebuilt in one
 * transaction if the masqueraded link addresses change. */
static int dns_restart(struct agent *a)
{
	const char *service = arg_dns.service ? arg_dns.service : RESOLV_DEFAULT_SERVICE;
	const char *slash = strchr(service, '/');
	_cleanup_(freep) char *ns = slash ? strndup(service, (size_t)(slash - service)) : NULL;
	const struct kube_ip *sources = NULL;
	const struct kube_service *svc;
	size_t n;
	int r;

	resolv_stop(a->resolv);
	a->resolv = resolv_free(a->resolv);
	r = resolv_new(a->event, &arg_dns, on_dns_report, a, &a->resolv);
	if (r < 0)
		return r;
	n = resolv_masquerade_sources(a->resolv, &sources);
	r = nft_set_masquerade_sources(a->nft, sources, n);
	if (r < 0)
		return r;
	if (nft_pending(a->nft))
		model_mark_all_dirty(a->model);
	svc = ns ? model_service_get(a->model, ns, slash + 1) : NULL;
	if (svc)
		resolv_service_update(a->resolv, svc);
	if (a->synced[KUBE_KIND_SERVICE])
		resolv_services_synced(a->resolv);
	return 0;
}

/*
 * Read the configuration file and the kubeconfig again, apply what changed
 * and list the cluster again with the new credentials. The rules stay as
 * they are meanwhile: the model keeps every object, and only differences
 * reach the kernel. Nothing changes when either file is invalid.
 */
static void reload(struct agent *a, const struct signalfd_siginfo *si)
{
	_cleanup_(config_freep) struct config *c = NULL;
	_cleanup_(freep) char *path = NULL, *kpath = NULL, *note = NULL, *error = NULL;
	_cleanup_(freep) char *changed = NULL;
	struct resolv_options dns;
	struct kube_config *kc = NULL;
	const struct kube_scope *old_scope = kube_client_scope(a->client);
	struct kube_scope scope;
	bool dns_changed;
	int r;

	log_info("Received SIGHUP: reading %s and the kubeconfig again",
		 arg_config_path ? arg_config_path : CONFIG_DEFAULT_PATH);
	r = config_load(&arg_args, &c, &path, &error);
	if (r >= 0) {
		kpath = config_kubeconfig_path(c, &note);
		r = kpath ? kube_config_load(kpath, c->context, &kc, &error) : -ENOMEM;
	}
	if (r < 0) {
		log_error("Reload failed, keeping the running configuration: %s",
			  error ? error : strerror(-r));
		service_warn(a, "the last reload failed (see the journal)");
		service_reload_ack((pid_t)si->ssi_pid, si->ssi_code, si->ssi_int, false);
		return;
	}
	service_reload_begin(a);
	service_reload_ack((pid_t)si->ssi_pid, si->ssi_code, si->ssi_int, true);
	service_warn(a, NULL);
	if (note)
		log_notice("%s", note);
	changed = config_diff(arg_config, c);
	config_dns_options(c, &dns);
	dns_changed = !dns_options_equal(&dns, &arg_dns);
	if (!streq_ptr(c->metrics_address, arg_config->metrics_address) ||
	    !streq_ptr(c->control_socket, arg_config->control_socket))
		log_warning("metrics-address and control-socket take effect at the next restart");
	log_info("Reloading: %s, %s%s; API server %s (kubeconfig %s, context %s, user %s)",
		 path ? path : "no configuration file", changed ? "changed: " : "no setting changed",
		 changed ? changed : "", kc->server, kc->path, kc->context, kc->user);
	use_config(TAKE_PTR(c), TAKE_PTR(path));
	if (model_set_zone(a->model, arg_zone) < 0 ||
	    model_set_external(a->model, arg_external_ips) < 0 || set_service_cidrs(a) < 0)
		log_error("Out of memory applying the new settings");
	set_gateway(a);
	if (dns_changed && (r = dns_restart(a)) < 0)
		log_error("Failed to apply the new DNS settings: %s", strerror(-r));
	kube_client_set_config(a->client, kc);
	a->config = kube_config_free(a->config);
	a->config = kc;
	scope_from_config(&scope);
	if (!streq_ptr(scope.namespaces, old_scope->namespaces) ||
	    !streq_ptr(scope.label_selector, old_scope->label_selector) ||
	    !streq_ptr(scope.dns_service, old_scope->dns_service)) {
		/* Watches still wanted carry on (listed again above), new ones
		 * list; what only dropped ones had goes once those have. */
		log_scope(&scope, true);
		r = kube_client_set_scope(a->client, &scope);
		if (r < 0)
			log_error("Failed to apply the new scope: %s", strerror(-r));
	}
	schedule_sync(a);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct agent *a = userdata;

	if (si->ssi_signo == SIGHUP) {
		reload(a, si);
		return 0;
	}
	log_info("Received %s, exiting", strsignal((int)si->ssi_signo));
	notify_stopping();
	/* A restart of the unit leaves the rules to the next instance. */
	if (!arg_keep_rules && si->ssi_signo == SIGTERM && service_restart_queued())
		arg_keep_rules = true;
	return sd_event_exit(a->event, 0);
}

static int agent_init(struct agent *a)
{
	struct kube_scope scope;
	sigset_t mask;
	int r;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = sd_event_default(&a->event);
	if (r < 0)
		return r;
	if ((r = sd_event_add_signal(a->event, NULL, SIGTERM, on_signal, a)) < 0 ||
	    (r = sd_event_add_signal(a->event, NULL, SIGINT, on_signal, a)) < 0 ||
	    (r = sd_event_add_signal(a->event, NULL, SIGHUP, on_signal, a)) < 0 ||
	    (r = service_new(a)) < 0)
		return r;
	r = sd_event_add_defer(a->event, &a->sync_source, on_sync, a);
	if (r < 0)
		return r;
	sd_event_source_set_priority(a->sync_source, SD_EVENT_PRIORITY_IDLE);
	sd_event_source_set_enabled(a->sync_source, SD_EVENT_OFF);
	sd_event_source_set_description(a->sync_source, "sync");
	r = sd_event_add_time(a->event, &a->delay_source, CLOCK_MONOTONIC, UINT64_MAX, 0, on_delay, a);
	if (r < 0)
		return r;
	/* Accuracy 0 would mean sd-event's default slack of 250 ms. */
	sd_event_source_set_time_accuracy(a->delay_source, 1);
	sd_event_source_set_enabled(a->delay_source, SD_EVENT_OFF);
	if ((r = model_new(&a->model)) < 0 || (r = model_set_zone(a->model, arg_zone)) < 0 ||
	    (r = model_set_external(a->model, arg_external_ips)) < 0 || (r = nft_new(&a->nft)) < 0 ||
	    (r = flows_new(a)) < 0 ||
	    (r = set_service_cidrs(a)) < 0 || (r = monitor_init(a)) < 0)
		return r;
	set_gateway(a);
	r = dns_init(a);
	if (r < 0)
		return r;
	r = kube_client_new(a->event, a->config, &handlers, a, &a->client);
	if (r < 0)
		return r;
	scope_from_config(&scope);
	log_scope(&scope, false);
	r = kube_client_set_scope(a->client, &scope);
	if (r < 0)
		return r;
	return operate_new(a, &(struct operate_options){ .metrics_address = arg_config->metrics_address,
							  .control_path = arg_config->control_socket });
}

static void log_latency_summary(const struct agent *a)
{
	const struct histogram *h = &a->event_latency;

	if (h->count == 0)
		return;
	log_info("Programming latency over %" PRIu64 " syncs (API event -> kernel): "
		 "mean %.2f ms, p50 <= %.2f ms, p99 <= %.2f ms",
		 h->count, (double)h->sum_usec / (double)h->count / USEC_PER_MSEC,
		 (double)histogram_quantile(h, 0.5) / USEC_PER_MSEC,
		 (double)histogram_quantile(h, 0.99) / USEC_PER_MSEC);
}

static int run(struct kube_config *config)
{
	struct agent a = { .config = config, .start_usec = now_usec(CLOCK_MONOTONIC) };
	_cleanup_(freep) char *error = NULL;
	int r;

	r = agent_init(&a);
	if (r < 0) {
		log_error("Failed to initialise: %s", strerror(-r));
		agent_done(&a);
		return EXIT_RUNTIME;
	}
	log_info("kube-annex %s starting: API server %s (kubeconfig %s, context %s, user %s)",
		 KUBE_ANNEX_VERSION, config->server, config->path, config->context, config->user);
	if (config->insecure_skip_tls_verify)
		log_warning("WARNING: insecure-skip-tls-verify is set in %s: the API server's "
			    "identity is NOT verified; anyone on the path can feed this host rules",
			    config->path);
	service_note(&a, "Connecting to the API server");
	kube_client_start(a.client);
	r = sd_event_loop(a.event);
	if (r < 0)
		log_error("Event loop failed: %s", strerror(-r));
	log_latency_summary(&a);
	agent_done(&a);
	if (!arg_keep_rules && nft_cleanup(&error) < 0)
		log_error("Failed to remove the kube-annex tables: %s", error ? error : "");
	return r < 0 ? EXIT_RUNTIME : 0;
}

/* ---- command line ------------------------------------------------------ */

/* The settings (which a reload reads again) and the kubeconfig. */
static int load_config(struct kube_config **ret)
{
	_cleanup_(freep) char *path = NULL, *kpath = NULL, *note = NULL, *error = NULL;
	struct config *c = NULL;
	int r;

	r = config_load(&arg_args, &c, &path, &error);
	if (r < 0) {
		log_error("Invalid configuration: %s", error ? error : strerror(-r));
		return r;
	}
	use_config(c, TAKE_PTR(path));
	if (resolv_options_check(&arg_dns, &error) < 0) {
		log_error("%s", error);
		return -EINVAL;
	}
	kpath = config_kubeconfig_path(arg_config, &note);
	if (!kpath)
		return -ENOMEM;
	if (note)
		log_notice("%s", note);
	r = kube_config_load(kpath, arg_config->context, ret, &error);
	if (r < 0) {
		log_error("Invalid kubeconfig: %s", error ? error : strerror(-r));
		return r;
	}
	return 0;
}

static int check_config(void)
{
	struct kube_config *kc = NULL;

	if (load_config(&kc) < 0)
		return EXIT_USAGE;
	printf("%s: valid\n", arg_config_path ? arg_config_path : "no configuration file");
	printf("%s: valid (context %s, API server %s, user %s)\n", kc->path, kc->context,
	       kc->server, kc->user);
	kube_config_free(kc);
	return 0;
}

static int do_cleanup(void)
{
	_cleanup_(freep) char *error = NULL;
	/* The resolver first, as on stop; recognised by name and marker. */
	int q = resolv_cleanup(on_dns_report, NULL);
	int r = nft_cleanup(&error);

	if (r < 0) {
		log_error("Cleanup failed: %s%s%s", strerror(-r), error ? ": " : "",
			  error ? error : "");
		return EXIT_RUNTIME;
	}
	log_info("Removed kube-annex's nftables tables (if there were any)");
	return q < 0 ? EXIT_RUNTIME : 0;
}

/* ExecStopPost=: clean up unless systemd is restarting the unit (or
 * keep-rules is set in the configuration file). */
static int do_stop_cleanup(void)
{
	_cleanup_(config_freep) struct config *c = NULL;
	_cleanup_(freep) char *error = NULL;
	char why[256];

	if (config_load(&arg_args, &c, NULL, &error) >= 0 && c->keep_rules) {
		log_info("Leaving the rules and DNS settings in place: keep-rules is set");
		return 0;
	}
	if (!service_stop_post_cleanup(why, sizeof(why))) {
		log_info("Leaving the rules and DNS settings in place: %s", why);
		return 0;
	}
	log_info("Cleaning up: %s", why);
	return do_cleanup();
}

int main(int argc, char **argv)
{
	_cleanup_(freep) char *error = NULL;
	struct kube_config *config = NULL;
	int r;

	/* `kube-annex status|explain ...` ask the running daemon. */
	if (argc > 1 && operate_is_verb(argv[1]))
		return operate_client_main(argc - 1, argv + 1);
	r = config_parse_argv(argc, argv, &arg_args, &error);
	if (r < 0) {
		if (error)
			log_error("%s", error);
		return EXIT_USAGE;
	}
	/* The one-shot actions talk to a person on a terminal. */
	if (arg_args.action != CONFIG_ACTION_RUN && isatty(STDERR_FILENO))
		log_set_prefix(false);
	switch (arg_args.action) {
	case CONFIG_ACTION_HELP:
		config_help(stdout);
		return 0;
	case CONFIG_ACTION_VERSION:
		printf("kube-annex %s\n", KUBE_ANNEX_VERSION);
		return 0;
	case CONFIG_ACTION_CLEANUP:
		return do_cleanup();
	case CONFIG_ACTION_STOP_CLEANUP:
		return do_stop_cleanup();
	case CONFIG_ACTION_RELOAD:
		return service_reload_main(arg_args.reload_pid);
	case CONFIG_ACTION_CHECK:
		r = check_config();
		break;
	default:
		r = load_config(&config) < 0 ? EXIT_USAGE : run(config);
		break;
	}
	config_args_done(&arg_args);
	arg_config = config_free(arg_config);
	free(arg_config_path);
	return r;
}
