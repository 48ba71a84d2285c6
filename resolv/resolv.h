/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * resolv/: cluster DNS on the host. Names in the cluster domain (and,
 * given the Service CIDRs, their reverse zones) resolve through the
 * cluster's DNS Service (kube-system/kube-dns, followed live), every other
 * name as before; everything is undone on stop and by resolv_cleanup().
 *
 * Modes:
 *   resolved  systemd-resolved is the host's resolver: a link of our own,
 *             kube-annex0, with one address (default 169.254.53.53), gets
 *             the cluster DNS as its server and the routing-only domain
 *             ~<cluster domain>, DefaultRoute=no, LLMNR/mDNS off, over
 *             sd-bus on the daemon's sd-event loop; applied again whenever
 *             resolved restarts. Queries leave with the link's address as
 *             source: the datapath masquerades it after DNAT
 *             (resolv_masquerade_sources).
 *   direct    opt-in: /etc/resolv.conf rewritten with the cluster DNS first
 *             and the host's servers after it; the original kept as
 *             /etc/resolv.conf.pre-kube-annex and restored if the file is
 *             still ours; other writers are noticed (inotify) and their
 *             file becomes the new original. Where NetworkManager writes
 *             the file, networkmanager mode instead of fighting it.
 *   networkmanager
 *             NetworkManager writes /etc/resolv.conf: its own dnsmasq
 *             plugin gets "server=/<cluster domain>/<cluster DNS>" in
 *             /etc/NetworkManager/dnsmasq.d/90-kube-annex.conf (and is
 *             turned on by /run/NetworkManager/conf.d/90-kube-annex.conf
 *             when NetworkManager ran without it: only when asked for),
 *             then NetworkManager reloads over sd-bus; resolv.conf stays
 *             NetworkManager's. See nm.c.
 *   off       nothing is touched.
 *   auto      resolved when systemd-resolved is really in the lookup path,
 *             networkmanager when NetworkManager's dnsmasq already is,
 *             else off, with the reason and the remedy reported.
 *
 * The module reports through the caller's function (priority is a syslog
 * level) and never fails the daemon for the host's resolver: the datapath
 * keeps working whatever happens here.
 */

#include "kube/kube.h"

struct sd_event;

#define RESOLV_LINK_NAME "kube-annex0"
#define RESOLV_DEFAULT_DOMAIN "cluster.local"
#define RESOLV_DEFAULT_SERVICE "kube-system/kube-dns"
#define RESOLV_DEFAULT_LINK_ADDRESS "169.254.53.53"
#define RESOLV_CONF_PATH "/etc/resolv.conf"
#define RESOLV_CONF_BACKUP_PATH "/etc/resolv.conf.pre-kube-annex"

enum resolv_mode {
	RESOLV_MODE_AUTO,
	RESOLV_MODE_RESOLVED,
	RESOLV_MODE_DIRECT,
	RESOLV_MODE_OFF,
	RESOLV_MODE_NETWORKMANAGER,
	_RESOLV_MODE_MAX,
};

const char *resolv_mode_to_string(enum resolv_mode m);

/* As given on the command line; NULL means the default. */
struct resolv_options {
	const char *mode;           /* auto | resolved | direct | networkmanager | off */
	const char *cluster_domain; /* cluster.local */
	const char *service;        /* namespace/name of the DNS Service */
	const char *addresses;      /* fixed servers "IP[,IP]": the Service is not followed */
	const char *link_addresses; /* kube-annex0's "IP[,IP]", one per family */
	const char *service_cidrs;  /* "CIDR[,CIDR]": their reverse zones go to the cluster DNS too */
};

/* Validate options; -EINVAL with a message naming the option. */
int resolv_options_check(const struct resolv_options *o, char **ret_error);

typedef void (*resolv_report_fn)(void *userdata, int priority, const char *message);

struct resolv;

/*
 * Pick the mode (auto: detect) and get ready; the host changes once the
 * DNS servers are known (fixed addresses: right away). Only -ENOMEM and
 * invalid options fail; an unusable resolver is reported and means off.
 */
int resolv_new(struct sd_event *event, const struct resolv_options *o, resolv_report_fn report,
	       void *userdata, struct resolv **ret);
/* Undo everything on the host (the cleanup below), synchronously. */
void resolv_stop(struct resolv *r);
/* Free without touching the host (after resolv_stop, or to leave it as it is). */
struct resolv *resolv_free(struct resolv *r);

enum resolv_mode resolv_get_mode(const struct resolv *r);
/*
 * The host's resolver is set up as far as it can be for now: off; the
 * settings are in effect; the DNS Service is known to be missing or
 * without a ClusterIP (reported); or an attempt failed (reported, and
 * retried). For READY=1: the first sync waits for this.
 */
bool resolv_settled(const struct resolv *r);
/* What resolv/ is doing, for status and explain. Pointers stay valid until
 * the next call into resolv/. */
struct resolv_status {
	enum resolv_mode mode;        /* in effect: resolved, direct, networkmanager or off */
	const char *domain;           /* cluster domain */
	const char *service_ns;       /* the DNS Service followed (unless fixed) */
	const char *service_name;
	bool fixed;                   /* --dns-address: servers given, not followed */
	const struct kube_ip *servers; /* the cluster DNS servers known (may be none) */
	size_t n_servers;
	bool configured;              /* the host's resolver uses them now */
	const char *link_kind;        /* resolved mode: "dummy" or "ifb", NULL before */
	const struct kube_ip *link_addrs;
	size_t n_link_addrs;
};
void resolv_get_status(const struct resolv *r, struct resolv_status *ret);

/*
 * The host's own nameservers, not the cluster DNS: those of
 * /etc/resolv.conf (its original when direct mode rewrote it), or, when it
 * lists only systemd-resolved's stub, resolved's upstream servers
 * (/run/systemd/resolve/resolv.conf), or, when it lists only
 * NetworkManager's dnsmasq, the servers NetworkManager gave it
 * (/run/NetworkManager/no-stub-resolv.conf). Reads files; returns how many were
 * stored in ret (at most max).
 */
size_t resolv_host_nameservers(struct kube_ip *ret, size_t max);

/* The source addresses the datapath must masquerade after DNAT (resolved
 * mode: kube-annex0's addresses); returns how many (0 otherwise). */
size_t resolv_masquerade_sources(const struct resolv *r, const struct kube_ip **ret);

/* Feed every Service event: only the DNS Service matters. */
void resolv_service_update(struct resolv *r, const struct kube_service *svc);
void resolv_service_delete(struct resolv *r, const char *ns, const char *name);
/* The first complete list of Services has been delivered. */
void resolv_services_synced(struct resolv *r);

/*
 * Remove whatever resolv/ may have left on this host, recognised by name
 * and marker: kube-annex0 (RevertLink, then deleted), a resolv.conf of
 * ours (the original put back; a stale backup removed) and NetworkManager
 * files of ours (removed, then NetworkManager reloads). Idempotent, needs
 * neither the cluster nor any state. 0, or -errno when something could not
 * be undone (reported).
 */
int resolv_cleanup(resolv_report_fn report, void *userdata);
