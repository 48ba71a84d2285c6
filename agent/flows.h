/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * agent/flows: UDP conntrack hygiene around syncs (conntrack/conntrack.h).
 * While a sync stages its changes, every UDP key is noted with what the
 * datapath held before; after a successful commit the UDP flows still
 * pinned to endpoints that left are deleted, at once or, when the last
 * cleanup was less than FLOWS_INTERVAL ago, when it is over (each cleanup
 * walks the kernel's whole conntrack table, so a burst of changes shares
 * one). A cleanup never fails a sync: its errors are logged (once per kind
 * until one succeeds) and counted in the metrics.
 */

#include "agent/agent.h"

#define FLOWS_INTERVAL_USEC (250 * USEC_PER_MSEC)

int flows_new(struct agent *a);
void flows_free(struct agent *a);
/* After nft_stage() took entry (NULL: removal) for key: 0 or -ENOMEM. */
int flows_note(struct agent *a, const struct model_key *key, const struct model_entry *entry);
/* After a successful nft_commit(). */
void flows_committed(struct agent *a);
