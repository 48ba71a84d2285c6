/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * networkmanager mode: on a host where NetworkManager writes
 * /etc/resolv.conf, its own dnsmasq plugin splits DNS by domain, and
 * kube-annex only adds "server=/<cluster domain>/<kube-dns IP>" to it
 * (/etc/NetworkManager/dnsmasq.d/, read by the dnsmasq NetworkManager runs
 * with --conf-dir). NetworkManager keeps writing resolv.conf; kube-annex
 * never touches that file.
 *
 * Why not NetworkManager's global DNS (NetworkManager.conf(5), verified on
 * 1.42 with dns=default): [global-dns-domain-*] sections are valid only
 * with a "*" section, which then replaces the servers *and search domains*
 * of every connection (and freezes them against DHCP); with "default" DNS
 * processing only the "*" servers reach resolv.conf at all, the per-domain
 * ones are ignored. So there is no split without a plugin that routes by
 * domain: dnsmasq (or resolved, which resolved mode covers).
 *
 * NetworkManager already runs dnsmasq (dns=dnsmasq, resolv.conf lists only
 * 127.0.0.1): one more server line changes nothing for other names - safe,
 * auto picks it. NetworkManager writes resolv.conf with its "default" DNS
 * processing: kube-annex turns the plugin on with a per-boot drop-in in
 * /run/NetworkManager/conf.d ([main] dns=dnsmasq). Names outside the
 * cluster domain still go to the same servers with the same answers, but
 * resolv.conf then says "nameserver 127.0.0.1", answers are cached, with
 * several servers dnsmasq prefers the fastest where glibc asks them in
 * order (its strict-order would keep the order but turns an upstream's
 * REFUSED or SERVFAIL into the client's 10 s timeout: not used), and
 * programs that copy resolv.conf (Docker into containers) see a loopback
 * server they drop - not "exactly as before", so only on request
 * (--dns=networkmanager, or --dns=direct, which would otherwise fight
 * NetworkManager over the file).
 *
 * NetworkManager learns of the files through Reload (org.freedesktop.
 * NetworkManager, since 1.22): CONF (0x1) for the drop-in, DNS_FULL (0x4,
 * restarts dnsmasq) for the dnsmasq.d file. Every call has a timeout; uid 0
 * passes NetworkManager's authorization without polkit.
 */
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "resolv/internal.h"

#define NM_DEST "org.freedesktop.NetworkManager"
#define NM_PATH "/org/freedesktop/NetworkManager"
#define NM_IFACE "org.freedesktop.NetworkManager"
#define NM_DNS_PATH "/org/freedesktop/NetworkManager/DnsManager"
#define NM_DNS_IFACE "org.freedesktop.NetworkManager.DnsManager"
#define NM_RUN_DIR "/run/NetworkManager/"
#define NM_ETC_DIR "/etc/NetworkManager"

/* NMManagerReloadFlags (libnm-core-public/nm-dbus-interface.h). */
#define NM_RELOAD_CONF 0x1u
#define NM_RELOAD_DNS_FULL 0x4u

#define RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define RETRY_MAX_USEC (30 * USEC_PER_SEC)

static int bus_open(sd_bus **ret, char **ret_error)
{
	sd_bus *bus = NULL;
	int r;

	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_set_method_call_timeout(bus, RESOLV_NM_CALL_TIMEOUT_USEC);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("cannot connect to the system bus: %s",
						   strerror(-r));
		sd_bus_unref(bus);
		return r;
	}
	*ret = bus;
	return 0;
}

/* 1 when NetworkManager owns its name on the bus, 0 when not. */
static int nm_running(sd_bus *bus, char **ret_error)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int r, has = 0;

	r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
			       "org.freedesktop.DBus", "NameHasOwner", &e, &reply, "s", NM_DEST);
	if (r >= 0)
		r = sd_bus_message_read(reply, "b", &has);
	if (r < 0 && ret_error) {
		_cleanup_(freep) char *text = resolv_bus_error_text(&e, r);

		*ret_error = strdup_printf("asking the bus for %s: %s", NM_DEST, text ?: "?");
	}
	sd_bus_message_unref(reply);
	sd_bus_error_free(&e);
	return r < 0 ? r : !!has;
}

static int nm_dns_property(sd_bus *bus, const char *name, char **ret, char **ret_error)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_get_property_string(bus, NM_DEST, NM_DNS_PATH, NM_DNS_IFACE, name, &e, ret);
	if (r < 0 && ret_error) {
		_cleanup_(freep) char *text = resolv_bus_error_text(&e, r);

		*ret_error = strdup_printf("NetworkManager's DnsManager.%s: %s", name, text ?: "?");
	}
	sd_bus_error_free(&e);
	return r;
}

/* Does the NetworkManager on the bus read our /etc/NetworkManager (and not
 * a container's)? Unknown counts as yes: its network namespace is ours. */
static bool nm_same_etc(int pid)
{
	char path[64];
	struct stat ours, theirs;

	snprintf(path, sizeof(path), "/proc/%d/root" NM_ETC_DIR, pid);
	if (stat(path, &theirs) < 0 || stat(NM_ETC_DIR, &ours) < 0)
		return true;
	return ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
}

static bool dnsmasq_installed(void)
{
	static const char *const paths[] = { "/usr/sbin/dnsmasq", "/sbin/dnsmasq" };

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (access(paths[i], X_OK) >= 0)
			return true;
	return false;
}

/* Someone else serves DNS on 127.0.0.1:53 (NetworkManager's dnsmasq could
 * not start there)? Unknown (no privilege to bind) counts as no. */
static bool loopback_dns_taken(void)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(53),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		_cleanup_(closep) int fd = socket(AF_INET, types[i] | SOCK_CLOEXEC, 0);

		if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
		    errno == EADDRINUSE)
			return true;
	}
	return false;
}

/* A file at our path that is not ours: never overwritten, never removed. */
static char *foreign_file(const struct resolv_nm_paths *p)
{
	const char *paths[] = { p->conf, p->dnsmasq };

	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		_cleanup_(freep) char *text = NULL;
		struct stat st;
		size_t len;

		if (lstat(paths[i], &st) < 0)
			continue;
		if (!S_ISREG(st.st_mode) ||
		    resolv_read_file(paths[i], RESOLV_CONF_MAX_SIZE, &text, &len) < 0 ||
		    !resolv_conf_is_ours(text, len))
			return strdup_printf("%s exists and is not kube-annex's", paths[i]);
	}
	return NULL;
}

static bool is_ours(const char *path)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;

	return resolv_read_file(path, RESOLV_CONF_MAX_SIZE, &text, &len) >= 0 &&
	       resolv_conf_is_ours(text, len);
}

/*
 * With "default" DNS processing: does NetworkManager write /etc/resolv.conf
 * itself (rc-manager symlink or file, and the file carries its header)?
 */
static bool nm_writes_resolv_conf(const char *rc_manager, const char *text, size_t len,
				  char **ret_why)
{
	_cleanup_(freep) char *target = NULL;
	struct stat st;

	if (!streq(rc_manager, "symlink") && !streq(rc_manager, "file")) {
		*ret_why = strdup_printf("NetworkManager does not write %s itself (rc-manager %s)",
					 RESOLV_CONF_PATH, rc_manager);
		return false;
	}
	if (!text || !resolv_conf_by_networkmanager(text, len)) {
		*ret_why = strdup_printf("%s is not NetworkManager's (no \"%s\" header)",
					 RESOLV_CONF_PATH, RESOLV_NM_HEADER);
		return false;
	}
	/* rc-manager=symlink leaves a symlink alone unless it is its own. */
	if (lstat(RESOLV_CONF_PATH, &st) >= 0 && S_ISLNK(st.st_mode) &&
	    streq(rc_manager, "symlink")) {
		target = realpath(RESOLV_CONF_PATH, NULL);
		if (!target || strncmp(target, NM_RUN_DIR, strlen(NM_RUN_DIR)) != 0) {
			*ret_why = strdup_printf("%s is a symlink to %s, which NetworkManager "
						 "leaves alone",
						 RESOLV_CONF_PATH, target ?: "nowhere");
			return false;
		}
	}
	return true;
}

static enum resolv_nm_verdict detect(sd_bus *bus, bool allow_switch, bool *ret_switch,
				     char **ret_why)
{
	static const struct resolv_nm_paths paths = {
		.conf = RESOLV_NM_CONF_PATH,
		.dnsmasq = RESOLV_NM_DNSMASQ_PATH,
	};
	_cleanup_(freep) char *mode = NULL, *rc = NULL, *text = NULL, *foreign = NULL;
	_cleanup_(resolv_conf_freep) struct resolv_conf *c = NULL;
	size_t len = 0;
	int r, pid;

	r = nm_running(bus, ret_why);
	if (r <= 0) {
		if (r == 0)
			*ret_why = strdup("NetworkManager is not running");
		return RESOLV_NM_ABSENT;
	}
	pid = resolv_bus_peer_local(bus, NM_DEST, "NetworkManager", "NetworkManager", ret_why);
	if (pid < 0)
		return RESOLV_NM_ABSENT;
	if (!nm_same_etc(pid)) {
		*ret_why = strdup_printf("NetworkManager (PID %d) reads another %s (a container's)",
					 pid, NM_ETC_DIR);
		return RESOLV_NM_ABSENT;
	}
	if (nm_dns_property(bus, "Mode", &mode, ret_why) < 0 ||
	    nm_dns_property(bus, "RcManager", &rc, ret_why) < 0)
		return RESOLV_NM_ABSENT;
	if (resolv_read_file(RESOLV_CONF_PATH, RESOLV_CONF_MAX_SIZE, &text, &len) < 0 ||
	    resolv_conf_parse(text, len, &c, NULL) < 0)
		c = NULL;

	if (streq(mode, "dnsmasq")) {
		if (!c || !resolv_conf_only_nameserver(c, RESOLV_NM_LISTEN_ADDRESS)) {
			*ret_why = strdup_printf("NetworkManager runs dnsmasq, but %s does not list "
						 "only its %s: lookups bypass it",
						 RESOLV_CONF_PATH, RESOLV_NM_LISTEN_ADDRESS);
			return RESOLV_NM_ABSENT;
		}
		/* Our own drop-in, left by --keep-rules or a crash: we turned
		 * dnsmasq on, and stop takes it away again. */
		*ret_switch = is_ours(paths.conf);
	} else if (streq(mode, "default")) {
		if (!nm_writes_resolv_conf(rc, text, len, ret_why))
			return RESOLV_NM_ABSENT;
		if (!allow_switch) {
			*ret_why = strdup_printf(
				"NetworkManager writes %s (DNS mode default); splitting DNS takes "
				"its dnsmasq plugin, which changes %s to 'nameserver %s' (programs "
				"that copy the file, e.g. Docker into containers, then fall back to "
				"other servers)",
				RESOLV_CONF_PATH, RESOLV_CONF_PATH, RESOLV_NM_LISTEN_ADDRESS);
			return RESOLV_NM_BLOCKED;
		}
		if (!dnsmasq_installed()) {
			*ret_why = strdup("NetworkManager's dnsmasq plugin needs dnsmasq, which is "
					  "not installed (Debian: dnsmasq-base)");
			return RESOLV_NM_BLOCKED;
		}
		if (loopback_dns_taken()) {
			*ret_why = strdup_printf("another DNS server listens on %s:53, where "
						 "NetworkManager's dnsmasq would have to",
						 RESOLV_NM_LISTEN_ADDRESS);
			return RESOLV_NM_BLOCKED;
		}
		*ret_switch = true;
	} else if (streq(mode, "systemd-resolved")) {
		*ret_why = strdup("NetworkManager hands DNS to systemd-resolved: that is "
				  "--dns=resolved (auto picks it when resolved is the resolver)");
		return c && resolv_conf_by_networkmanager(text, len) ? RESOLV_NM_BLOCKED :
								      RESOLV_NM_ABSENT;
	} else {
		*ret_why = strdup_printf("NetworkManager's DNS mode is %s (kube-annex works with "
					 "dnsmasq, or default with --dns=networkmanager)",
					 mode);
		return c && resolv_conf_by_networkmanager(text, len) ? RESOLV_NM_BLOCKED :
								      RESOLV_NM_ABSENT;
	}
	foreign = foreign_file(&paths);
	if (foreign) {
		*ret_why = TAKE_PTR(foreign);
		return RESOLV_NM_BLOCKED;
	}
	return RESOLV_NM_USE;
}

enum resolv_nm_verdict resolv_nm_detect(bool allow_switch, sd_bus **ret_bus, bool *ret_switch,
					char **ret_why)
{
	_cleanup_(freep) char *why = NULL;
	enum resolv_nm_verdict v;
	sd_bus *bus = NULL;

	*ret_switch = false;
	if (bus_open(&bus, &why) < 0)
		v = RESOLV_NM_ABSENT;
	else
		v = detect(bus, allow_switch, ret_switch, &why);
	if (v == RESOLV_NM_USE) {
		*ret_bus = bus;
		return v;
	}
	sd_bus_flush_close_unref(bus);
	if (ret_why)
		*ret_why = TAKE_PTR(why);
	return v;
}

/* ---- the files ------------------------------------------------------------ */

static int mkdir_parent(const char *path)
{
	_cleanup_(freep) char *dir = NULL;
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return 0;
	dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	if (mkdir(dir, 0755) < 0)
		return errno == EEXIST ? 0 : -errno;
	/* NetworkManager's own mode, whatever our umask (the unit's is 077). */
	return chmod(dir, 0755) < 0 ? -errno : 0;
}

/* 1 when path now has text and did not before, 0 when it already had. */
static int put_file(const char *path, const char *text, char **ret_error)
{
	_cleanup_(freep) char *now = NULL;
	size_t len;
	int r;

	r = resolv_read_file(path, RESOLV_CONF_MAX_SIZE, &now, &len);
	if (r >= 0 && streq(now, text))
		return 0;
	if (r >= 0 && !resolv_conf_is_ours(now, len)) {
		*ret_error = strdup_printf("%s exists and is not kube-annex's: not overwriting it",
					   path);
		return -EEXIST;
	}
	r = mkdir_parent(path);
	if (r >= 0)
		r = resolv_write_file(path, text, 0644);
	if (r < 0) {
		*ret_error = strdup_printf("writing %s: %s", path, strerror(-r));
		return r;
	}
	return 1;
}

static int rmdir_parent(const char *path)
{
	_cleanup_(freep) char *dir = NULL;
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return 0;
	dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	return rmdir(dir) < 0 ? -errno : 0;
}

int resolv_nm_remove_files(const struct resolv_nm_paths *p, resolv_report_fn fn, void *userdata,
			   unsigned *ret_reload)
{
	const char *paths[] = { p->conf, p->dnsmasq };
	int ret = 0;

	*ret_reload = 0;
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		_cleanup_(freep) char *text = NULL;
		struct stat st;
		size_t len;

		if (lstat(paths[i], &st) < 0) {
			if (errno != ENOENT && ret == 0)
				ret = -errno;
			continue;
		}
		if (!S_ISREG(st.st_mode) ||
		    resolv_read_file(paths[i], RESOLV_CONF_MAX_SIZE, &text, &len) < 0 ||
		    !resolv_conf_is_ours(text, len)) {
			resolv_report(fn, userdata, LOG_NOTICE, "Left %s alone: it is not kube-annex's",
			       paths[i]);
			continue;
		}
		if (unlink(paths[i]) < 0) {
			int e = -errno;

			resolv_report(fn, userdata, LOG_ERR, "Cannot remove %s: %s", paths[i], strerror(-e));
			if (ret == 0)
				ret = e;
			continue;
		}
		/* The drop-in changes the DNS mode (CONF); dnsmasq reads its
		 * conf-dir only when it starts (DNS_FULL). */
		*ret_reload |= NM_RELOAD_DNS_FULL | (i == 0 ? NM_RELOAD_CONF : 0);
		/* The per-boot directory too, when ours was all it held
		 * (NetworkManager does not make it). */
		if (i == 0)
			(void)rmdir_parent(paths[i]);
	}
	return ret;
}

/* A call to NetworkManager that never starts it (bus activation): an
 * administrator who stopped it keeps it stopped. */
static int new_call(sd_bus *bus, const char *path, const char *iface, const char *member,
		    sd_bus_message **ret)
{
	int r = sd_bus_message_new_method_call(bus, ret, NM_DEST, path, iface, member);

	if (r >= 0)
		r = sd_bus_message_set_auto_start(*ret, false);
	return r;
}

static int reload_sync(sd_bus *bus, unsigned flags, char **ret_error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int r;

	r = new_call(bus, NM_PATH, NM_IFACE, "Reload", &m);
	if (r >= 0)
		r = sd_bus_message_append(m, "u", flags);
	if (r >= 0)
		r = sd_bus_call(bus, m, RESOLV_NM_CALL_TIMEOUT_USEC, &e, NULL);
	if (r < 0) {
		_cleanup_(freep) char *text = resolv_bus_error_text(&e, r);

		*ret_error = strdup_printf("Reload: %s", text ?: "?");
	}
	sd_bus_error_free(&e);
	return r;
}

int resolv_nm_cleanup(sd_bus *bus, const struct resolv_nm_paths *p, resolv_report_fn fn,
		      void *userdata)
{
	_cleanup_(freep) char *err = NULL;
	sd_bus *own = NULL;
	unsigned flags;
	int r, q;

	r = resolv_nm_remove_files(p, fn, userdata, &flags);
	if (flags == 0)
		return r;
	if (!bus && bus_open(&own, &err) >= 0)
		bus = own;
	q = bus ? nm_running(bus, &err) : -ENOTCONN;
	if (q == 0)
		resolv_report(fn, userdata, LOG_INFO,
		       "Removed kube-annex's NetworkManager DNS files; NetworkManager is not "
		       "running and starts without them");
	else if (q > 0)
		q = reload_sync(bus, flags, &err);
	if (q < 0) {
		resolv_report(fn, userdata, LOG_ERR,
		       "Removed kube-annex's NetworkManager DNS files, but NetworkManager did not "
		       "reload (%s): run 'nmcli general reload dns-full'",
		       err ?: strerror(-q));
		if (r == 0)
			r = q;
	} else if (q > 0) {
		resolv_report(fn, userdata, LOG_INFO,
		       "Removed kube-annex's NetworkManager DNS files (%s%s%s) and reloaded "
		       "NetworkManager",
		       flags & NM_RELOAD_CONF ? p->conf : "", flags & NM_RELOAD_CONF ? ", " : "",
		       p->dnsmasq);
	}
	sd_bus_flush_close_unref(own);
	return r;
}

/* ---- on the event loop ---------------------------------------------------- */

struct resolv_nm {
	sd_event *event;
	sd_bus *bus;
	sd_bus_slot *owner_slot, *disconnect_slot, *call_slot;
	resolv_report_fn report;
	void *userdata;
	char *conf_path, *dnsmasq_path;
	char **domains;
	size_t n_domains;
	bool switch_mode;

	struct kube_ip servers[KUBE_MAX_IPS];
	size_t n_servers;
	unsigned reload; /* flags NetworkManager has yet to act on */
	bool verify;     /* its DNS mode is yet to be checked */
	bool again;      /* sync again when the running call ends */
	bool configured, attempted, gave_up;
	char *applied;   /* what the log last said was in effect */
	sd_event_source *retry;
	uint64_t retry_usec;
};

#define say(nm, prio, ...) resolv_report((nm)->report, (nm)->userdata, prio, __VA_ARGS__)

static void nm_sync(struct resolv_nm *nm);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct resolv_nm *nm = userdata;

	nm->retry = sd_event_source_disable_unref(nm->retry);
	nm_sync(nm);
	return 0;
}

static void retry_later(struct resolv_nm *nm)
{
	uint64_t d = nm->retry_usec ? nm->retry_usec : RETRY_MIN_USEC;

	nm->attempted = true;
	nm->retry_usec = d * 2 > RETRY_MAX_USEC ? RETRY_MAX_USEC : d * 2;
	nm->retry = sd_event_source_disable_unref(nm->retry);
	if (sd_event_add_time_relative(nm->event, &nm->retry, CLOCK_MONOTONIC, d, 0, on_retry,
				       nm) < 0)
		say(nm, LOG_ERR, "Cannot arm the NetworkManager retry timer");
}

static struct resolv_nm_paths nm_paths(const struct resolv_nm *nm)
{
	return (struct resolv_nm_paths){ .conf = nm->conf_path, .dnsmasq = nm->dnsmasq_path };
}

static void bus_detach(struct resolv_nm *nm)
{
	nm->call_slot = sd_bus_slot_unref(nm->call_slot);
	nm->owner_slot = sd_bus_slot_unref(nm->owner_slot);
	nm->disconnect_slot = sd_bus_slot_unref(nm->disconnect_slot);
	if (nm->bus) {
		sd_bus_detach_event(nm->bus);
		nm->bus = sd_bus_flush_close_unref(nm->bus);
	}
}

/* NetworkManager's DNS mode is not dnsmasq with our files in place: take
 * them away again and leave the DNS to NetworkManager. */
static void give_up(struct resolv_nm *nm, const char *mode)
{
	struct resolv_nm_paths p = nm_paths(nm);
	unsigned flags;

	say(nm, LOG_ERR,
	    "NetworkManager's DNS mode is %s, not dnsmasq, with kube-annex's files in place "
	    "(a dns= setting in NetworkManager.conf or %s/conf.d wins over %s, or a file of "
	    "that name in %s/conf.d shadows it): removing them, cluster names do not resolve "
	    "on this host",
	    mode, NM_ETC_DIR, nm->conf_path, NM_ETC_DIR);
	nm->gave_up = true;
	nm->attempted = true;
	nm->configured = false;
	(void)resolv_nm_remove_files(&p, nm->report, nm->userdata, &flags);
	if (flags && nm->bus) {
		_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;

		/* Floating call: its reply (or timeout) needs nothing from us. */
		if (new_call(nm->bus, NM_PATH, NM_IFACE, "Reload", &m) >= 0 &&
		    sd_bus_message_append(m, "u", flags) >= 0)
			(void)sd_bus_call_async(nm->bus, NULL, m, NULL, NULL,
						RESOLV_NM_CALL_TIMEOUT_USEC);
	}
}

static void report_applied(struct resolv_nm *nm)
{
	char buf[KUBE_MAX_IPS * (INET6_ADDRSTRLEN + 1)] = "", addr[INET6_ADDRSTRLEN];
	_cleanup_(freep) char *desc = NULL;
	size_t len = 0;

	for (size_t i = 0; i < nm->n_servers && len < sizeof(buf); i++) {
		kube_ip_format(&nm->servers[i], addr, sizeof(addr));
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "," : "", addr);
	}
	desc = strdup_printf("%s -> %s", nm->domains[0], buf);
	if (!desc || streq_ptr(desc, nm->applied))
		return;
	say(nm, LOG_INFO,
	    "NetworkManager's dnsmasq: names in %s go to %s%s (%s); all other names as "
	    "before%s%s%s",
	    nm->domains[0], buf,
	    nm->n_domains > 1 ? ", and so do reverse lookups in the Service CIDRs" : "",
	    nm->dnsmasq_path, nm->switch_mode ? "; kube-annex turned the plugin on (" : "",
	    nm->switch_mode ? nm->conf_path : "", nm->switch_mode ? ")" : "");
	free(nm->applied);
	nm->applied = TAKE_PTR(desc);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

static int send_call(struct resolv_nm *nm)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	nm->call_slot = sd_bus_slot_unref(nm->call_slot);
	if (nm->reload) {
		r = new_call(nm->bus, NM_PATH, NM_IFACE, "Reload", &m);
		if (r >= 0)
			r = sd_bus_message_append(m, "u", nm->reload);
	} else {
		r = new_call(nm->bus, NM_DNS_PATH, "org.freedesktop.DBus.Properties", "Get", &m);
		if (r >= 0)
			r = sd_bus_message_append(m, "ss", NM_DNS_IFACE, "Mode");
	}
	if (r >= 0)
		r = sd_bus_call_async(nm->bus, &nm->call_slot, m, on_reply, nm,
				      RESOLV_NM_CALL_TIMEOUT_USEC);
	return r;
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	struct resolv_nm *nm = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(reply);
	const char *mode = NULL;
	bool was_reload = nm->reload != 0;
	int r;

	nm->call_slot = sd_bus_slot_unref(nm->call_slot);
	if (e && (sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
		  sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER))) {
		/* on_owner_changed() goes on when it is back. */
		nm->attempted = true;
		say(nm, LOG_WARNING, "NetworkManager is not running; kube-annex's files are in "
				     "place for when it starts");
		return 0;
	}
	if (e) {
		int err = -sd_bus_message_get_errno(reply) ?: -EIO;
		_cleanup_(freep) char *text = resolv_bus_error_text(e, err);

		say(nm, LOG_ERR, "NetworkManager: %s: %s; retrying",
		    was_reload ? "Reload" : "reading its DNS mode", text ?: "?");
		retry_later(nm);
		return 0;
	}
	if (was_reload) {
		nm->reload = 0;
		nm->verify = true;
	} else {
		r = sd_bus_message_read(reply, "v", "s", &mode);
		if (r < 0) {
			say(nm, LOG_ERR, "NetworkManager: unexpected DnsManager.Mode: %s",
			    strerror(-r));
			retry_later(nm);
			return 0;
		}
		nm->verify = false;
		if (!streq(mode, "dnsmasq")) {
			give_up(nm, mode);
			return 0;
		}
		nm->configured = true;
		nm->retry_usec = 0;
		report_applied(nm);
	}
	if (nm->verify || nm->again) {
		nm->again = false;
		nm_sync(nm);
	}
	return 0;
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct resolv_nm *nm = userdata;
	const char *name, *old_owner, *new_owner;

	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
	    !streq(name, NM_DEST) || nm->gave_up)
		return 0;
	nm->configured = false;
	nm->call_slot = sd_bus_slot_unref(nm->call_slot);
	if (!*new_owner) {
		say(nm, LOG_WARNING,
		    "NetworkManager left the bus; kube-annex's files stay for when it returns");
		return 0;
	}
	/* It read its configuration, with our files, when it started. */
	say(nm, LOG_NOTICE, "NetworkManager (re)started; checking its DNS mode");
	nm->verify = true;
	nm_sync(nm);
	return 0;
}

static int bus_attach(struct resolv_nm *nm);

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct resolv_nm *nm = userdata;

	say(nm, LOG_WARNING, "Lost the system bus; reconnecting");
	bus_detach(nm);
	nm->verify = true;
	retry_later(nm);
	return 0;
}

static int bus_attach(struct resolv_nm *nm)
{
	int r;

	if (!nm->bus) {
		r = bus_open(&nm->bus, NULL);
		if (r < 0)
			return r;
	}
	r = sd_bus_attach_event(nm->bus, nm->event, SD_EVENT_PRIORITY_NORMAL);
	/* Stop undoes everything after the loop has exited: keep the bus. */
	if (r >= 0)
		r = sd_bus_set_close_on_exit(nm->bus, false);
	if (r >= 0)
		r = sd_bus_add_match_async(nm->bus, &nm->owner_slot,
					   "type='signal',sender='org.freedesktop.DBus',"
					   "path='/org/freedesktop/DBus',"
					   "interface='org.freedesktop.DBus',"
					   "member='NameOwnerChanged',"
					   "arg0='" NM_DEST "'",
					   on_owner_changed, NULL, nm);
	if (r >= 0)
		r = sd_bus_match_signal(nm->bus, &nm->disconnect_slot, "org.freedesktop.DBus.Local",
					"/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
					"Disconnected", on_disconnected, nm);
	if (r < 0)
		bus_detach(nm);
	return r;
}

/* Our files as they should be; the Reload flags their changes need. */
static int write_files(struct resolv_nm *nm, char **ret_error)
{
	_cleanup_(freep) char *dnsmasq = NULL, *conf = NULL;
	int r;

	r = resolv_nm_render_dnsmasq(nm->servers, nm->n_servers, (const char *const *)nm->domains,
				     nm->n_domains, &dnsmasq);
	if (r < 0)
		return r;
	r = put_file(nm->dnsmasq_path, dnsmasq, ret_error);
	if (r < 0)
		return r;
	if (r > 0)
		nm->reload |= NM_RELOAD_DNS_FULL;
	if (!nm->switch_mode)
		return 0;
	r = resolv_nm_render_conf(nm->dnsmasq_path, &conf);
	if (r >= 0)
		r = put_file(nm->conf_path, conf, ret_error);
	if (r > 0)
		nm->reload |= NM_RELOAD_CONF;
	return r < 0 ? r : 0;
}

static void nm_sync(struct resolv_nm *nm)
{
	_cleanup_(freep) char *err = NULL;
	int r;

	if (nm->gave_up || nm->n_servers == 0)
		return;
	if (nm->call_slot) {
		nm->again = true;
		return;
	}
	nm->retry = sd_event_source_disable_unref(nm->retry);
	r = write_files(nm, &err);
	if (r < 0) {
		say(nm, LOG_ERR, "Cannot configure NetworkManager's dnsmasq: %s",
		    err ?: strerror(-r));
		retry_later(nm);
		return;
	}
	if (!nm->reload && !nm->verify)
		return;
	if (!nm->bus) {
		if (bus_attach(nm) < 0) {
			retry_later(nm);
			return;
		}
		say(nm, LOG_NOTICE, "Reconnected to the system bus");
	}
	r = send_call(nm);
	if (r < 0) {
		say(nm, LOG_ERR, "Cannot talk to NetworkManager: %s", strerror(-r));
		retry_later(nm);
	}
}

int resolv_nm_new(sd_event *event, sd_bus *bus, const struct resolv_nm_paths *paths,
		  bool switch_mode, const char *const *domains, size_t n_domains,
		  resolv_report_fn fn, void *userdata, struct resolv_nm **ret)
{
	struct resolv_nm *nm = calloc(1, sizeof(*nm));
	int r = -ENOMEM;

	if (!nm) {
		sd_bus_flush_close_unref(bus);
		return -ENOMEM;
	}
	nm->event = sd_event_ref(event);
	nm->bus = bus;
	nm->report = fn;
	nm->userdata = userdata;
	nm->switch_mode = switch_mode;
	nm->conf_path = strdup(paths->conf);
	nm->dnsmasq_path = strdup(paths->dnsmasq);
	nm->domains = calloc(n_domains ?: 1, sizeof(*nm->domains));
	if (!nm->conf_path || !nm->dnsmasq_path || !nm->domains || n_domains == 0)
		goto fail;
	for (size_t i = 0; i < n_domains; i++) {
		nm->domains[i] = strdup(domains[i]);
		if (!nm->domains[i])
			goto fail;
		nm->n_domains++;
	}
	r = bus_attach(nm);
	if (r < 0)
		goto fail;
	*ret = nm;
	return 0;
fail:
	resolv_nm_free(nm);
	return n_domains == 0 ? -EINVAL : r;
}

void resolv_nm_set_servers(struct resolv_nm *nm, const struct kube_ip *servers, size_t n)
{
	if (n > KUBE_MAX_IPS)
		n = KUBE_MAX_IPS;
	memcpy(nm->servers, servers, n * sizeof(*servers));
	nm->n_servers = n;
	nm_sync(nm);
}

bool resolv_nm_configured(const struct resolv_nm *nm)
{
	return nm && nm->configured;
}

bool resolv_nm_settled(const struct resolv_nm *nm)
{
	return !nm || nm->configured || nm->attempted;
}

void resolv_nm_stop(struct resolv_nm *nm)
{
	struct resolv_nm_paths p;

	if (!nm)
		return;
	nm->retry = sd_event_source_disable_unref(nm->retry);
	nm->call_slot = sd_bus_slot_unref(nm->call_slot);
	p = nm_paths(nm);
	/* The event loop's exit may have closed the bus: connect again then. */
	(void)resolv_nm_cleanup(nm->bus && sd_bus_is_open(nm->bus) > 0 ? nm->bus : NULL, &p,
				nm->report, nm->userdata);
	nm->configured = false;
}

struct resolv_nm *resolv_nm_free(struct resolv_nm *nm)
{
	if (!nm)
		return NULL;
	bus_detach(nm);
	sd_event_source_disable_unref(nm->retry);
	sd_event_unref(nm->event);
	for (size_t i = 0; i < nm->n_domains; i++)
		free(nm->domains[i]);
	free(nm->domains);
	free(nm->conf_path);
	free(nm->dnsmasq_path);
	free(nm->applied);
	free(nm);
	return NULL;
}
