/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Private to kube/: libcurl multi on an sd-event loop. */

#include <curl/curl.h>
#include <systemd/sd-event.h>

struct http;

/* Called when a transfer ends; priv is the easy handle's CURLOPT_PRIVATE.
 * The handle has already been removed from the multi handle. */
typedef void (*http_done_fn)(void *priv, CURLcode result);

int http_new(sd_event *event, http_done_fn done, struct http **ret);
struct http *http_free(struct http *h);
int http_add(struct http *h, CURL *easy);
void http_remove(struct http *h, CURL *easy);
