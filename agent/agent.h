/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * agent/: the daemon's state, shared by the files of this folder only
 * (main.c wires the event loop; other agent/ files add verbs and
 * endpoints on top of the same state).
 */

#include <systemd/sd-event.h>

#include "conntrack/conntrack.h"
#include "kube/kube.h"
#include "lib/histogram.h"
#include "model/model.h"
#include "nft/nft.h"
#include "resolv/resolv.h"

struct agent {
	sd_event *event;
	struct kube_config *config;
	struct kube_client *client;
	struct model *model;
	struct nft *nft;
	struct resolv *resolv;
	struct nft_monitor *monitor;
	struct ct_plan *conntrack; /* UDP keys whose stale flows to delete */
	sd_event_source *conntrack_source; /* the next cleanup, when rate-limited */
	uint64_t conntrack_last_usec;      /* when the last cleanup ended */
	uint64_t conntrack_deleted;  /* entries deleted, for the metrics */
	uint64_t conntrack_failures; /* cleanups that failed */
	int conntrack_last_error;    /* said once until a cleanup succeeds */
	sd_event_source *monitor_source;
	sd_event_source *verify_source;
	uint64_t restorations;
	sd_event_source *sync_source;
	sd_event_source *delay_source;
	sd_event_source *retry_source;
	uint64_t retry_usec;
	bool synced[_KUBE_KIND_MAX];
	/* ServiceCIDR objects as listed (by name); used when no --service-cidr */
	struct kube_service_cidr *service_cidrs[KUBE_MAX_SERVICE_CIDR_OBJECTS];
	size_t n_service_cidrs;
	const char *service_cidr_source; /* "--service-cidr", "ServiceCIDR objects", NULL */
	bool ready;
	uint64_t start_usec;
	uint64_t last_sync_usec;
	uint64_t first_change_usec; /* first API event not yet committed */
	struct histogram event_latency;   /* API event -> kernel commit */
	struct histogram cluster_latency; /* cluster change (trigger time) -> commit */
	unsigned bad_objects;
	struct operate *operate; /* agent/operate.h: health, metrics, status, explain */
	struct service *service; /* agent/service.c: READY, STATUS, reload */
};
