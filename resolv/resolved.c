/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * systemd-resolved's D-Bus API (org.freedesktop.resolve1.Manager, see
 * systemd's man/org.freedesktop.resolve1.xml), the calls a link owner makes.
 * Every call carries a timeout: a hung resolved must not hang the daemon.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <systemd/sd-bus.h>

#include "resolv/internal.h"

#define R_DEST "org.freedesktop.resolve1"
#define R_PATH "/org/freedesktop/resolve1"
#define R_MGR "org.freedesktop.resolve1.Manager"
#define R_NO_SUCH_LINK "org.freedesktop.resolve1.NoSuchLink"


char *resolv_bus_error_text(const sd_bus_error *e, int r)
{
	if (e && sd_bus_error_is_set(e))
		return strdup_printf("%s (%s)", e->message ?: strerror(-r), e->name);
	return strdup(strerror(-r));
}

static int call_sync(sd_bus *bus, sd_bus_message *m, const char *what, char **ret_error)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	int r;

	r = sd_bus_call(bus, m, RESOLVED_CALL_TIMEOUT_USEC, &e, NULL);
	if (r < 0 && ret_error) {
		_cleanup_(freep) char *text = resolv_bus_error_text(&e, r);

		*ret_error = strdup_printf("%s: %s", what, text ?: "?");
	}
	sd_bus_error_free(&e);
	return r;
}

int resolved_ping(sd_bus *bus, char **ret_error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	r = sd_bus_message_new_method_call(bus, &m, R_DEST, R_PATH, "org.freedesktop.DBus.Peer",
					   "Ping");
	if (r < 0)
		return r;
	return call_sync(bus, m, "org.freedesktop.resolve1 Ping", ret_error);
}

int resolv_bus_peer_local(sd_bus *bus, const char *name, const char *comm_prefix,
			  const char *what, char **ret_error)
{
	_cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
	struct stat ours = {}, theirs = {};
	char path[64], comm[32] = "";
	pid_t pid = 0;
	FILE *f;
	int r;

	r = sd_bus_get_name_creds(bus, name, SD_BUS_CREDS_PID, &creds);
	if (r >= 0)
		r = sd_bus_creds_get_pid(creds, &pid);
	if (r < 0) {
		*ret_error = strdup_printf("cannot tell which process is %s: %s", name,
					   strerror(-r));
		return -EREMOTE;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	r = stat(path, &theirs) < 0 ? -errno : stat("/proc/self/ns/net", &ours);
	if (r == -EACCES || r == -EPERM) {
		/* ns/net needs ptrace access to the peer, another user: root
		 * without CAP_SYS_PTRACE (the hardened unit) has none. Every
		 * network namespace has its own inodes under /proc/PID/net/,
		 * which needs no such access. */
		snprintf(path, sizeof(path), "/proc/%d/net/dev", (int)pid);
		r = stat(path, &theirs) < 0 ? -errno : stat("/proc/self/net/dev", &ours);
	}
	/* A PID from another PID namespace may name some other process here. */
	if (strncmp(comm, comm_prefix, strlen(comm_prefix)) != 0 || r < 0) {
		*ret_error = strdup_printf("%s (PID %d on the bus) is not visible from here: it "
					   "serves another container or namespace",
					   name, (int)pid);
		return -EREMOTE;
	}
	if (ours.st_dev != theirs.st_dev || ours.st_ino != theirs.st_ino) {
		*ret_error = strdup_printf("%s (PID %d) runs in another network namespace: its "
					   "links are not ours",
					   what, (int)pid);
		return -EREMOTE;
	}
	return (int)pid;
}

int resolved_check_netns(sd_bus *bus, char **ret_error)
{
	int r = resolv_bus_peer_local(bus, R_DEST, "systemd-resolve", "systemd-resolved",
				      ret_error);

	return r < 0 ? r : 0;
}

char *resolved_resolv_conf_mode(sd_bus *bus)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	char *mode = NULL;

	if (sd_bus_get_property_string(bus, R_DEST, R_PATH, R_MGR, "ResolvConfMode", &e, &mode) < 0)
		mode = NULL;
	sd_bus_error_free(&e);
	return mode;
}

int resolved_revert_link(sd_bus *bus, int ifindex, char **ret_error)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *f = NULL;
	int r;

	r = sd_bus_message_new_method_call(bus, &m, R_DEST, R_PATH, R_MGR, "RevertLink");
	if (r < 0 || (r = sd_bus_message_append(m, "i", ifindex)) < 0)
		return r;
	r = call_sync(bus, m, "RevertLink", ret_error);
	if (r < 0)
		return r;
	if (sd_bus_message_new_method_call(bus, &f, R_DEST, R_PATH, R_MGR, "FlushCaches") >= 0)
		(void)call_sync(bus, f, "FlushCaches", NULL);
	return 0;
}

/* ---- applying a link's settings ----------------------------------------- */

enum step {
	STEP_DEFAULT_ROUTE,
	STEP_LLMNR,
	STEP_MDNS,
	STEP_DNSSEC,
	STEP_DOT,
	STEP_DOMAINS,
	STEP_DNS,
	STEP_FLUSH,
	_STEP_MAX,
};

static const struct {
	const char *method;
	bool required;
} steps[_STEP_MAX] = {
	[STEP_DEFAULT_ROUTE] = { "SetLinkDefaultRoute", true },
	[STEP_LLMNR] = { "SetLinkLLMNR", false },
	[STEP_MDNS] = { "SetLinkMulticastDNS", false },
	[STEP_DNSSEC] = { "SetLinkDNSSEC", false },
	[STEP_DOT] = { "SetLinkDNSOverTLS", false },
	[STEP_DOMAINS] = { "SetLinkDomains", true },
	[STEP_DNS] = { "SetLinkDNS", true },
	[STEP_FLUSH] = { "FlushCaches", false },
};

struct resolved_apply {
	sd_bus *bus;
	sd_bus_slot *slot;
	int ifindex;
	struct kube_ip *servers;
	size_t n_servers;
	char **domains;
	size_t n_domains;
	enum step step;
	resolved_done_fn done;
	void *userdata;
};

struct resolved_apply *resolved_apply_free(struct resolved_apply *a)
{
	if (!a)
		return NULL;
	sd_bus_slot_unref(a->slot);
	sd_bus_unref(a->bus);
	for (size_t i = 0; i < a->n_domains; i++)
		free(a->domains[i]);
	free(a->domains);
	free(a->servers);
	free(a);
	return NULL;
}

static int append_servers(sd_bus_message *m, const struct resolved_apply *a)
{
	int r = sd_bus_message_open_container(m, 'a', "(iay)");

	for (size_t i = 0; r >= 0 && i < a->n_servers; i++) {
		const struct kube_ip *ip = &a->servers[i];

		r = sd_bus_message_open_container(m, 'r', "iay");
		if (r >= 0)
			r = sd_bus_message_append(m, "i", ip->family);
		if (r >= 0)
			r = sd_bus_message_append_array(m, 'y', ip->bytes,
							ip->family == AF_INET ? 4 : 16);
		if (r >= 0)
			r = sd_bus_message_close_container(m);
	}
	return r < 0 ? r : sd_bus_message_close_container(m);
}

static int append_domains(sd_bus_message *m, const struct resolved_apply *a)
{
	int r = sd_bus_message_open_container(m, 'a', "(sb)");

	/* true: routing-only ("~domain"), never a search domain. */
	for (size_t i = 0; r >= 0 && i < a->n_domains; i++)
		r = sd_bus_message_append(m, "(sb)", a->domains[i], 1);
	return r < 0 ? r : sd_bus_message_close_container(m);
}

static int build_step(struct resolved_apply *a, sd_bus_message **ret)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	r = sd_bus_message_new_method_call(a->bus, &m, R_DEST, R_PATH, R_MGR,
					   steps[a->step].method);
	if (r < 0)
		return r;
	switch (a->step) {
	case STEP_DEFAULT_ROUTE:
		r = sd_bus_message_append(m, "ib", a->ifindex, 0);
		break;
	case STEP_LLMNR:
	case STEP_MDNS:
	case STEP_DNSSEC:
	case STEP_DOT:
		r = sd_bus_message_append(m, "is", a->ifindex, "no");
		break;
	case STEP_DOMAINS:
		r = sd_bus_message_append(m, "i", a->ifindex);
		if (r >= 0)
			r = append_domains(m, a);
		break;
	case STEP_DNS:
		r = sd_bus_message_append(m, "i", a->ifindex);
		if (r >= 0)
			r = append_servers(m, a);
		break;
	default:
		break;
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

static int send_step(struct resolved_apply *a)
{
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
	int r;

	a->slot = sd_bus_slot_unref(a->slot);
	r = build_step(a, &m);
	if (r < 0)
		return r;
	return sd_bus_call_async(a->bus, &a->slot, m, on_reply, a, RESOLVED_CALL_TIMEOUT_USEC);
}

static void finish(struct resolved_apply *a, int r, bool no_such_link, const char *error)
{
	resolved_done_fn done = a->done;

	a->done = NULL;
	if (done)
		done(a->userdata, r, no_such_link, error);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
	struct resolved_apply *a = userdata;
	const sd_bus_error *e = sd_bus_message_get_error(reply);
	int r;

	if (e) {
		r = -sd_bus_message_get_errno(reply) ?: -EIO;
		/* systemd 237 has no SetLinkDefaultRoute; a link with only
		 * routing domains is no default route there anyway. */
		bool tolerable = !steps[a->step].required ||
				 (a->step == STEP_DEFAULT_ROUTE &&
				  sd_bus_error_has_name(e, SD_BUS_ERROR_UNKNOWN_METHOD));

		if (!tolerable) {
			_cleanup_(freep) char *text = resolv_bus_error_text(e, r);
			_cleanup_(freep) char *msg = strdup_printf("%s: %s", steps[a->step].method,
								   text ?: "?");

			finish(a, r, sd_bus_error_has_name(e, R_NO_SUCH_LINK), msg);
			return 0;
		}
	}
	if (++a->step == _STEP_MAX) {
		finish(a, 0, false, NULL);
		return 0;
	}
	r = send_step(a);
	if (r < 0) {
		_cleanup_(freep) char *msg = strdup_printf("%s: %s", steps[a->step].method,
							   strerror(-r));

		finish(a, r, false, msg);
	}
	return 0;
}

int resolved_apply_start(sd_bus *bus, const struct resolved_link_config *config,
			 resolved_done_fn done, void *userdata, struct resolved_apply **ret)
{
	struct resolved_apply *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->bus = sd_bus_ref(bus);
	a->ifindex = config->ifindex;
	a->done = done;
	a->userdata = userdata;
	a->servers = calloc(config->n_servers ?: 1, sizeof(*a->servers));
	a->domains = calloc(config->n_domains ?: 1, sizeof(*a->domains));
	if (!a->servers || !a->domains) {
		resolved_apply_free(a);
		return -ENOMEM;
	}
	memcpy(a->servers, config->servers, config->n_servers * sizeof(*a->servers));
	a->n_servers = config->n_servers;
	for (size_t i = 0; i < config->n_domains; i++) {
		a->domains[i] = strdup(config->domains[i]);
		if (!a->domains[i]) {
			resolved_apply_free(a);
			return -ENOMEM;
		}
		a->n_domains++;
	}
	r = send_step(a);
	if (r < 0) {
		resolved_apply_free(a);
		return r;
	}
	*ret = a;
	return 0;
}
