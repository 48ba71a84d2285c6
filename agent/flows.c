/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * UDP conntrack cleanup after syncs: the plan, its timer, logs and counts.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <systemd/sd-event.h>

#include "agent/agent.h"
#include "agent/flows.h"
#include "lib/log.h"

static void log_cleaned(const struct model_key *key, const char *comment, uint64_t deleted,
			void *userdata)
{
	char vip[INET6_ADDRSTRLEN];
	bool v6 = key->vip.family == AF_INET6;

	log_msg(deleted ? LOG_INFO : LOG_DEBUG,
		"Deleted %" PRIu64 " stale UDP conntrack entr%s of Service %s (%s%s%s:%u)", deleted,
		deleted == 1 ? "y" : "ies", comment[0] ? comment : "(gone)", v6 ? "[" : "",
		kube_ip_format(&key->vip, vip, sizeof(vip)), v6 ? "]" : "", key->port);
}

/* "ns/a:dns, ns/b:53, ns/c:53 and more", for a failure's log line. */
struct target_names {
	char buf[256];
	size_t n;
};

static void name_targets(const struct model_key *key, const char *comment, uint64_t deleted,
			 void *userdata)
{
	struct target_names *names = userdata;
	size_t len = strlen(names->buf);

	if (names->n++ < 3)
		snprintf(names->buf + len, sizeof(names->buf) - len, "%s%s", len ? ", " : "",
			 comment[0] ? comment : "(gone)");
}

static void arm(struct agent *a)
{
	int enabled = SD_EVENT_OFF;

	sd_event_source_get_enabled(a->conntrack_source, &enabled);
	if (enabled != SD_EVENT_OFF)
		return;
	sd_event_source_set_time(a->conntrack_source, a->conntrack_last_usec + FLOWS_INTERVAL_USEC);
	sd_event_source_set_enabled(a->conntrack_source, SD_EVENT_ONESHOT);
}

/*
 * Never fatal: the rules are right already, and a failure only leaves such
 * flows stuck until their clients fall silent (30 s). A round that stopped
 * at its bounds but made progress is followed by another.
 */
static void cleanup(struct agent *a)
{
	_cleanup_(freep) char *error = NULL;
	struct target_names names = {};
	struct ct_result res;
	int r;

	r = ct_plan_execute(a->conntrack, &res, &error);
	a->conntrack_deleted += res.deleted;
	a->conntrack_last_usec = now_usec(CLOCK_MONOTONIC);
	ct_plan_foreach(a->conntrack, log_cleaned, NULL);
	log_debug("conntrack: %zu UDP Service ports, %" PRIu64 " entries read, %" PRIu64
		  " deleted, %" PRIu64 " gone meanwhile, in %.2f ms",
		  ct_plan_keys(a->conntrack, AF_INET, NULL) + ct_plan_keys(a->conntrack, AF_INET6, NULL),
		  res.examined, res.deleted, res.vanished, (double)res.usec / USEC_PER_MSEC);
	if (r < 0 || res.truncated)
		ct_plan_foreach(a->conntrack, name_targets, &names);
	if (res.truncated)
		log_notice("Stale UDP conntrack entries of %s%s: more than %u to read or %u to delete "
			   "at once, %s", names.buf, names.n > 3 ? " and more" : "", CT_MAX_EXAMINED,
			   CT_MAX_DELETED, res.deleted ? "continuing shortly" :
			   "the rest expire when their clients fall silent");
	if (r < 0) {
		a->conntrack_failures++;
		log_msg(r == a->conntrack_last_error ? LOG_DEBUG : LOG_WARNING,
			"Failed to delete stale UDP conntrack entries of %s%s: %s", names.buf,
			names.n > 3 ? " and more" : "", error ? error : strerror(-r));
	}
	a->conntrack_last_error = r < 0 ? r : 0;
	if (r >= 0 && res.truncated && res.deleted > 0)
		arm(a);
	else
		ct_plan_clear(a->conntrack);
}

void flows_committed(struct agent *a)
{
	if (ct_plan_finish(a->conntrack) == 0)
		return;
	if (a->conntrack_last_usec &&
	    now_usec(CLOCK_MONOTONIC) < a->conntrack_last_usec + FLOWS_INTERVAL_USEC)
		arm(a);
	else
		cleanup(a);
}

/* Only while the last sync succeeded: after a failed commit the kernel's
 * rules are unknown, and the next success calls flows_committed(). */
static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	if (a->retry_usec == 0 && ct_plan_finish(a->conntrack) > 0)
		cleanup(a);
	return 0;
}

int flows_note(struct agent *a, const struct model_key *key, const struct model_entry *entry)
{
	struct model_entry before;

	if (key->protocol != IPPROTO_UDP)
		return 0;
	/* Staging leaves the committed copy alone: this is the old state. */
	return ct_plan_note(a->conntrack, key,
			    nft_committed_entry(a->nft, key, &before) ? &before : NULL, entry);
}

int flows_new(struct agent *a)
{
	int r = ct_plan_new(&a->conntrack);

	if (r < 0)
		return r;
	r = sd_event_add_time(a->event, &a->conntrack_source, CLOCK_MONOTONIC, UINT64_MAX, 0,
			      on_timer, a);
	if (r < 0)
		return r;
	sd_event_source_set_time_accuracy(a->conntrack_source, USEC_PER_MSEC);
	sd_event_source_set_description(a->conntrack_source, "conntrack-cleanup");
	return sd_event_source_set_enabled(a->conntrack_source, SD_EVENT_OFF);
}

void flows_free(struct agent *a)
{
	a->conntrack_source = sd_event_source_disable_unref(a->conntrack_source);
	a->conntrack = ct_plan_free(a->conntrack);
}
