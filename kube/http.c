/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libcurl's multi-socket interface driven by sd-event: curl tells us which
 * sockets to watch and when to wake it; we never poll.
 */
#include <curl/curl.h>
#include <systemd/sd-event.h>

#include "kube/http.h"
#include "lib/log.h"

struct http {
	sd_event *event;
	CURLM *multi;
	sd_event_source *timer;
	http_done_fn done;
};

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void check_done(struct http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;
		void *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&priv);
		curl_multi_remove_handle(h->multi, easy);
		h->done(priv, result);
	}
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct http *h = userdata;
	int flags = 0, running;

	if (revents & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	check_done(h);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct http *h = userdata;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
	return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	sd_event_source *src = socketp;
	uint32_t events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (src) {
			sd_event_source_disable_unref(src);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		events |= EPOLLOUT;
	if (src)
		return sd_event_source_set_io_events(src, events) < 0 ? -1 : 0;
	if (sd_event_add_io(h->event, &src, fd, events, on_io, h) < 0)
		return -1;
	sd_event_source_set_description(src, "curl-socket");
	curl_multi_assign(h->multi, fd, src);
	return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;

	if (timeout_ms < 0)
		return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	if (sd_event_source_set_time_relative(h->timer, (uint64_t)timeout_ms * USEC_PER_MSEC) < 0)
		return -1;
	return sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

int http_new(sd_event *event, http_done_fn done, struct http **ret)
{
	struct http *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->event = sd_event_ref(event);
	h->done = done;
	h->multi = curl_multi_init();
	if (!h->multi) {
		http_free(h);
		return -ENOMEM;
	}
	r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
				       on_timer, h);
	if (r < 0) {
		http_free(h);
		return r;
	}
	/* curl's "call me in 0 ms" must not wait for sd-event's default
	 * 250 ms timer coalescing. */
	sd_event_source_set_time_accuracy(h->timer, 1);
	sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
	sd_event_source_set_description(h->timer, "curl-timer");
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	/* One connection per transfer (at most four: two LISTs or WATCHes and
	 * discovery). Multiplexing them over one HTTP/2 connection stalled a
	 * large LIST at the 64 KiB stream window behind a WATCH (libcurl
	 * 7.88) until the 120 s timeout. */
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
	*ret = h;
	return 0;
}

struct http *http_free(struct http *h)
{
	if (!h)
		return NULL;
	if (h->multi)
		curl_multi_cleanup(h->multi);
	sd_event_source_disable_unref(h->timer);
	sd_event_unref(h->event);
	free(h);
	return NULL;
}

int http_add(struct http *h, CURL *easy)
{
	return curl_multi_add_handle(h->multi, easy) == CURLM_OK ? 0 : -ENOMEM;
}

void http_remove(struct http *h, CURL *easy)
{
	curl_multi_remove_handle(h->multi, easy);
}
