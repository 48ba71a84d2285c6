/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The API client: discovery, then for each kind a reflector that LISTs
 * (paginated) and WATCHes from the list's resourceVersion, relisting on
 * 410 Gone and reconnecting with jittered exponential backoff. Every object
 * goes through the decoders; what fails to decode is reported and skipped,
 * never allowed to disturb the rest of the state.
 */
#include <assert.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/random.h>
#include <systemd/sd-event.h>
#include <uthash.h>

#include "kube/http.h"
#include "kube/kube.h"
#include "kube/scope.h"
#include "lib/log.h"

#define LIST_PAGE_SIZE 500
#define BACKOFF_MIN_USEC (500 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
#define ERROR_BODY_MAX 4096u
#define CONNECT_TIMEOUT_SEC 10L
/* Ask the server to end each watch after a while so a silently dead
 * connection cannot keep us stale for long; TCP keepalives cover the rest. */
#define WATCH_TIMEOUT_MIN_SEC 240
#define WATCH_TIMEOUT_SPREAD_SEC 120

static inline void cJSON_Deletep(cJSON **j)
{
	cJSON_Delete(*j);
}

enum request_type {
	REQUEST_DISCOVERY,
	REQUEST_LIST,
	REQUEST_WATCH,
};

struct kube_client;
struct reflector;

struct request {
	struct kube_client *client;
	struct reflector *reflector; /* NULL for discovery */
	enum request_type type;
	CURL *easy;
	struct curl_slist *headers;
	char *body; /* list/discovery body, or error body of a watch */
	size_t body_len;
	size_t body_max;
	struct kube_lines lines; /* watch stream */
	int failure;             /* -errno set by the write callback */
	unsigned events;         /* watch events received */
	uint64_t start_usec;     /* CLOCK_MONOTONIC */
	char curl_error[CURL_ERROR_SIZE];
};

struct known {
	char *key; /* namespace/name */
	char *resource_version;
	uint64_t generation; /* list generation that last saw it */
	UT_hash_handle hh;
};

/*
 * One LIST+WATCH of one kind in one scope (all namespaces, a namespace,
 * the cluster DNS Service). A reflector dropped by a scope change is
 * "retired": it keeps what it knew, without requests, until the new
 * watches of its kind have listed.
 */
struct reflector {
	struct kube_client *client;
	enum kube_kind kind;
	struct kube_watch_spec spec;
	const char *resource; /* "Service", "EndpointSlice", "Endpoints" */
	char *scope_text;     /* "namespace a" */
	char *what;           /* for messages: "Service" or "Service (namespace a)" */
	bool needs_list;      /* new with a scope change: retired ones wait for it */
	struct known *known;
	uint64_t generation;
	char *resource_version; /* to watch from; NULL means list first */
	char *continue_token;
	bool listing;
	struct request *request;
	sd_event_source *retry;
	uint64_t backoff_usec;
	/* for status, metrics and staleness (kube_client_watch_info) */
	sd_event_source *stale; /* armed while a watch is open */
	bool watching;
	bool synced;
	uint64_t since_usec;
	uint64_t last_data_usec;
	uint64_t down_since_usec; /* first failure of the current outage, 0: none */
	uint64_t lists, relists, watches, stale_reconnects;
};

/* Where ServiceCIDRs come from (discovery after the endpoints API). */
enum cidr_api {
	CIDR_API_UNKNOWN, /* not discovered yet */
	CIDR_API_NONE,    /* the cluster has none (or discovery was refused) */
	CIDR_API_V1,
	CIDR_API_V1BETA1,
};

struct kube_client {
	sd_event *event;
	const struct kube_config *config;
	struct kube_handlers handlers;
	void *userdata;
	struct http *http;
	enum kube_endpoints_api api;
	int discovery_step; /* endpoints 0: v1, 1: v1beta1; ServiceCIDRs 2: v1, 3: v1beta1 */
	enum cidr_api cidr_api;
	bool cidr_forbidden;      /* the last LIST of ServiceCIDRs got 403 */
	bool cidr_synced_reported; /* synced() said for ServiceCIDRs */
	struct request *discovery;
	sd_event_source *discovery_retry;
	uint64_t discovery_backoff_usec;
	struct kube_scope scope; /* strings owned */
	struct reflector **reflectors;
	size_t n_reflectors;
	struct reflector **retired;
	size_t n_retired;
	uint64_t stale_usec;
	struct kube_api_error_count errors[KUBE_API_ERROR_CODES];
	size_t n_errors;
};

static void trouble(struct kube_client *c, const char *fmt, ...) _printf_(2, 3);

static void trouble(struct kube_client *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (c->handlers.trouble)
		c->handlers.trouble(c->userdata, buf);
	else
		log_debug("kube: %s", buf);
}

static void count_error(struct kube_client *c, long code)
{
	size_t i;

	for (i = 0; i < c->n_errors; i++)
		if (c->errors[i].code == code)
			break;
	if (i == c->n_errors) {
		if (c->n_errors == KUBE_API_ERROR_CODES) {
			i = KUBE_API_ERROR_CODES - 1;
			c->errors[i].code = -1; /* too many distinct codes: "other" */
		} else {
			c->errors[c->n_errors++] = (struct kube_api_error_count){ .code = code };
		}
	}
	c->errors[i].count++;
}

/* ---- requests ----------------------------------------------------------- */

static struct request *request_free(struct request *q)
{
	if (!q)
		return NULL;
	if (q->easy)
		curl_easy_cleanup(q->easy);
	curl_slist_free_all(q->headers);
	kube_lines_reset(&q->lines);
	free(q->body);
	free(q);
	return NULL;
}

static int append_body(struct request *q, const char *data, size_t len)
{
	char *b;

	if (q->body_len + len > q->body_max)
		return -EMSGSIZE;
	b = realloc(q->body, q->body_len + len + 1);
	if (!b)
		return -ENOMEM;
	q->body = b;
	memcpy(q->body + q->body_len, data, len);
	q->body_len += len;
	q->body[q->body_len] = 0;
	return 0;
}

static int watch_line(const char *line, size_t len, void *userdata);

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct request *q = userdata;
	size_t len = size * nmemb;
	long status = 0;
	int r;

	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	if (q->type == REQUEST_WATCH && status == 200) {
		q->reflector->last_data_usec = now_usec(CLOCK_MONOTONIC);
		r = kube_lines_feed(&q->lines, data, len, watch_line, q);
	} else if (q->type == REQUEST_WATCH) {
		/* An error answer (a proxy's HTML page, say): its start is
		 * enough for the message. */
		r = append_body(q, data, len < q->body_max - q->body_len ? len : q->body_max - q->body_len);
	} else {
		r = append_body(q, data, len);
	}
	if (r < 0) {
		q->failure = r;
		return 0; /* abort the transfer */
	}
	return len;
}

/* The end of a watch's response headers: the server has accepted it. */
static size_t on_header(char *data, size_t size, size_t nitems, void *userdata)
{
	struct request *q = userdata;
	size_t len = size * nitems;
	long status = 0;

	if (len <= 2 && (len == 0 || data[0] == '\r' || data[0] == '\n')) {
		curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 200) {
			q->reflector->watching = true;
			q->reflector->last_data_usec = now_usec(CLOCK_MONOTONIC);
			q->reflector->down_since_usec = 0;
		}
	}
	return len;
}

static int add_auth(struct kube_client *c, struct request *q)
{
	const struct kube_config *cfg = c->config;
	_cleanup_(freep) char *token = NULL;
	_cleanup_(freep) char *header = NULL;
	struct curl_slist *l;
	int r;

	if (cfg->token_file) {
		/* Re-read every time: projected tokens are rotated on disk. */
		r = kube_token_read(cfg->token_file, &token);
		if (r < 0)
			return r;
	} else if (cfg->token) {
		token = strdup(cfg->token);
		if (!token)
			return -ENOMEM;
	}
	if (token) {
		header = strdup_printf("Authorization: Bearer %s", token);
		if (!header)
			return -ENOMEM;
		l = curl_slist_append(q->headers, header);
		explicit_bzero(header, strlen(header));
		if (!l)
			return -ENOMEM;
		q->headers = l;
	} else if (cfg->username) {
		curl_easy_setopt(q->easy, CURLOPT_USERNAME, cfg->username);
		curl_easy_setopt(q->easy, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
	}
	return 0;
}

static void set_blob(CURL *easy, CURLoption opt, char *data, size_t len)
{
	struct curl_blob blob = { .data = data, .len = len, .flags = CURL_BLOB_COPY };

	curl_easy_setopt(easy, opt, &blob);
}

static void set_tls(struct kube_client *c, CURL *easy)
{
	const struct kube_config *cfg = c->config;

	if (cfg->insecure_skip_tls_verify) {
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (cfg->ca_data) {
		set_blob(easy, CURLOPT_CAINFO_BLOB, cfg->ca_data, cfg->ca_data_len);
	} else if (cfg->ca_file) {
		curl_easy_setopt(easy, CURLOPT_CAINFO, cfg->ca_file);
	}
	if (cfg->cert_data)
		set_blob(easy, CURLOPT_SSLCERT_BLOB, cfg->cert_data, cfg->cert_data_len);
	else if (cfg->cert_file)
		curl_easy_setopt(easy, CURLOPT_SSLCERT, cfg->cert_file);
	if (cfg->key_data)
		set_blob(easy, CURLOPT_SSLKEY_BLOB, cfg->key_data, cfg->key_data_len);
	else if (cfg->key_file)
		curl_easy_setopt(easy, CURLOPT_SSLKEY, cfg->key_file);
}

static int request_start(struct kube_client *c, struct reflector *rf, enum request_type type,
			 const char *url, struct request **ret)
{
	struct request *q;
	struct curl_slist *l;
	int r;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->client = c;
	q->reflector = rf;
	q->type = type;
	q->body_max = type == REQUEST_WATCH ? ERROR_BODY_MAX : KUBE_MAX_EVENT_SIZE;
	q->start_usec = now_usec(CLOCK_MONOTONIC);
	kube_lines_init(&q->lines, KUBE_MAX_EVENT_SIZE);
	q->easy = curl_easy_init();
	l = curl_slist_append(NULL, "Accept: application/json");
	if (!q->easy || !l) {
		curl_slist_free_all(l);
		request_free(q);
		return -ENOMEM;
	}
	q->headers = l;
	r = add_auth(c, q);
	if (r < 0) {
		if (c->config->token_file)
			trouble(c, "cannot read tokenFile %s: %s", c->config->token_file,
				strerror(-r));
		request_free(q);
		return r;
	}
	curl_easy_setopt(q->easy, CURLOPT_URL, url);
	curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->headers);
	curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
	curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(q->easy, CURLOPT_ERRORBUFFER, q->curl_error);
	curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_SEC);
	curl_easy_setopt(q->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(q->easy, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(q->easy, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(q->easy, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(q->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "kube-annex/" KUBE_ANNEX_VERSION);
	if (type != REQUEST_WATCH)
		curl_easy_setopt(q->easy, CURLOPT_TIMEOUT, 120L);
	else {
		curl_easy_setopt(q->easy, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(q->easy, CURLOPT_HEADERDATA, q);
		curl_easy_setopt(q->easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	}
	/* A LIST that stops moving is retried long before that timeout. */
	if (type == REQUEST_LIST) {
		curl_easy_setopt(q->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(q->easy, CURLOPT_LOW_SPEED_TIME, 15L);
	}
	curl_easy_setopt(q->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	set_tls(c, q->easy);
	r = http_add(c->http, q->easy);
	if (r < 0) {
		request_free(q);
		return r;
	}
	*ret = q;
	return 0;
}

static void request_cancel(struct kube_client *c, struct request **q)
{
	if (!*q)
		return;
	http_remove(c->http, (*q)->easy);
	*q = request_free(*q);
}

/* The message of a Status object, or the raw body start. */
static void describe_failure(const struct request *q, CURLcode result, long status, char *buf,
			     size_t len)
{
	_cleanup_(cJSON_Deletep) cJSON *j = NULL;
	const cJSON *msg;

	if (q->failure == -EMSGSIZE) {
		snprintf(buf, len, "response larger than %u bytes", KUBE_MAX_EVENT_SIZE);
		return;
	}
	if (result != CURLE_OK && q->failure == 0) {
		snprintf(buf, len, "%s", q->curl_error[0] ? q->curl_error : curl_easy_strerror(result));
		return;
	}
	if (q->body)
		j = cJSON_ParseWithLength(q->body, q->body_len);
	msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (cJSON_IsString(msg))
		snprintf(buf, len, "HTTP %ld: %s", status, msg->valuestring);
	else
		snprintf(buf, len, "HTTP %ld", status);
}

static uint64_t backoff_next(uint64_t *cur)
{
	uint64_t d = *cur ? *cur : BACKOFF_MIN_USEC;
	uint32_t rnd = 0;

	*cur = d * 2 > BACKOFF_MAX_USEC ? BACKOFF_MAX_USEC : d * 2;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint32_t)now_usec(CLOCK_MONOTONIC);
	/* "Equal jitter": between half and all of the current step. */
	return d / 2 + (uint64_t)rnd % (d / 2 + 1);
}

/* ---- reflectors ------------------------------------------------------ */

static void reflector_run(struct reflector *rf);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	reflector_run(userdata);
	return 0;
}

static void reflector_retry_later(struct reflector *rf)
{
	struct kube_client *c = rf->client;
	uint64_t d = backoff_next(&rf->backoff_usec);

	rf->retry = sd_event_source_disable_unref(rf->retry);
	if (sd_event_add_time_relative(c->event, &rf->retry, CLOCK_MONOTONIC, d, 0, on_retry, rf) <
	    0)
		trouble(c, "cannot arm retry timer for %s", rf->what);
	log_debug("kube: %s: retrying in %.1fs", rf->what, (double)d / USEC_PER_SEC);
}

static void known_free(struct reflector *rf, struct known *k)
{
	HASH_DEL(rf->known, k);
	free(k->key);
	free(k->resource_version);
	free(k);
}

static int known_note(struct reflector *rf, const char *key, const char *rv, bool *ret_unchanged)
{
	struct known *k;

	HASH_FIND_STR(rf->known, key, k);
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k || !(k->key = strdup(key))) {
			free(k);
			return -ENOMEM;
		}
		HASH_ADD_KEYPTR(hh, rf->known, k->key, strlen(k->key), k);
	}
	*ret_unchanged = rv && streq_ptr(k->resource_version, rv);
	if (!*ret_unchanged) {
		free(k->resource_version);
		k->resource_version = strdup_or_null(rv);
	}
	k->generation = rf->generation;
	return 0;
}

/* Whether another watch of rf's kind (a retired one too) has key. Scopes
 * overlap only for the cluster DNS Service, or across a scope change. */
static bool held_elsewhere(const struct reflector *rf, const char *key, const char *ns)
{
	const struct kube_client *c = rf->client;

	for (size_t i = 0; i < c->n_reflectors + c->n_retired; i++) {
		const struct reflector *o = i < c->n_reflectors ? c->reflectors[i] :
								  c->retired[i - c->n_reflectors];
		struct known *k;

		if (o == rf || o->kind != rf->kind ||
		    (o->spec.namespace && !streq(o->spec.namespace, ns)))
			continue;
		HASH_FIND_STR(o->known, key, k);
		if (k)
			return true;
	}
	return false;
}

/* rf no longer has ns/name (already dropped from rf->known): it is gone
 * unless another watch still has it. */
static void deliver_delete(struct reflector *rf, const char *ns, const char *name)
{
	struct kube_client *c = rf->client;
	char key[2 * KUBE_MAX_NAME_LEN + 2];

	snprintf(key, sizeof(key), "%s/%s", ns, name);
	if (held_elsewhere(rf, key, ns))
		return;
	if (rf->kind == KUBE_KIND_SERVICE)
		c->handlers.service_delete(c->userdata, ns, name);
	else if (rf->kind == KUBE_KIND_SERVICE_CIDR)
		c->handlers.service_cidr_delete(c->userdata, name);
	else
		c->handlers.endpoints_delete(c->userdata, ns, name);
}

static void report_bad(struct reflector *rf, const char *ns, const char *name, const char *error)
{
	struct kube_client *c = rf->client;

	if (c->handlers.bad_object)
		c->handlers.bad_object(c->userdata, rf->what, ns ? ns : "?", name ? name : "?",
				       error ? error : "cannot decode");
}

static int decode_endpoints(struct reflector *rf, const cJSON *obj,
			    struct kube_endpoint_slice ***ret, size_t *ret_n, char **error)
{
	struct kube_endpoint_slice *one = NULL, **v;
	int r;

	if (rf->client->api == KUBE_API_ENDPOINTS_V1)
		return kube_endpoints_decode(obj, ret, ret_n, error);
	r = kube_endpoint_slice_decode(obj, &one, error);
	if (r < 0)
		return r;
	v = calloc(1, sizeof(*v));
	if (!v) {
		kube_endpoint_slice_free(one);
		return -ENOMEM;
	}
	v[0] = one;
	*ret = v;
	*ret_n = 1;
	return 0;
}

/* Decode obj and hand it over; a bad object is reported and skipped. */
static int deliver_upsert(struct reflector *rf, const cJSON *obj, const char *ns,
			  const char *name)
{
	struct kube_client *c = rf->client;
	_cleanup_(freep) char *error = NULL;
	int r;

	if (rf->kind == KUBE_KIND_SERVICE) {
		struct kube_service *svc = NULL;

		r = kube_service_decode(obj, &svc, &error);
		if (r >= 0)
			c->handlers.service_upsert(c->userdata, svc);
	} else if (rf->kind == KUBE_KIND_SERVICE_CIDR) {
		struct kube_service_cidr *cidr = NULL;

		r = kube_service_cidr_decode(obj, &cidr, &error);
		if (r >= 0)
			c->handlers.service_cidr_upsert(c->userdata, cidr);
	} else {
		struct kube_endpoint_slice **slices = NULL;
		size_t n = 0;

		r = decode_endpoints(rf, obj, &slices, &n, &error);
		if (r >= 0)
			c->handlers.endpoints_upsert(c->userdata, ns, name, slices, n);
	}
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		report_bad(rf, ns, name, error);
	return 0;
}

static int handle_object(struct reflector *rf, const cJSON *obj, bool deleted)
{
	const char *ns = kube_meta_string(obj, "namespace");
	const char *name = kube_meta_string(obj, "name");
	const char *rv = kube_meta_string(obj, "resourceVersion");
	_cleanup_(freep) char *key = NULL;
	bool unchanged;
	struct known *k;
	int r;

	if (rf->kind == KUBE_KIND_SERVICE_CIDR)
		ns = ""; /* cluster-scoped: the key is "/name" */
	if (!ns || !name) {
		report_bad(rf, ns, name, "metadata.namespace or metadata.name missing");
		return 0;
	}
	key = strdup_printf("%s/%s", ns, name);
	if (!key)
		return -ENOMEM;
	if (deleted) {
		HASH_FIND_STR(rf->known, key, k);
		if (k)
			known_free(rf, k);
		deliver_delete(rf, ns, name);
		return 0;
	}
	r = known_note(rf, key, rv, &unchanged);
	if (r < 0 || unchanged)
		return r;
	return deliver_upsert(rf, obj, ns, name);
}

static void set_string(char **p, const char *v)
{
	free(*p);
	*p = strdup_or_null(v);
}

static int watch_event(struct reflector *rf, const cJSON *ev)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
	const char *t;
	int r = 0;

	if (!cJSON_IsString(type) || !cJSON_IsObject(obj)) {
		trouble(rf->client, "%s watch: event without type or object, ignoring", rf->what);
		return 0;
	}
	t = type->valuestring;
	if (streq(t, "ERROR")) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(obj, "message");

		trouble(rf->client, "%s watch: error event: %s", rf->what,
			cJSON_IsString(msg) ? msg->valuestring : "(no message)");
		count_error(rf->client, cJSON_IsNumber(code) ? (long)code->valuedouble : 0);
		/* 410 Gone / "too old resource version": our position is lost. */
		return cJSON_IsNumber(code) && code->valueint == 410 ? -ESTALE : -EPROTO;
	}
	if (streq(t, "ADDED") || streq(t, "MODIFIED"))
		r = handle_object(rf, obj, false);
	else if (streq(t, "DELETED"))
		r = handle_object(rf, obj, true);
	else if (!streq(t, "BOOKMARK"))
		return 0;
	if (r >= 0)
		set_string(&rf->resource_version, kube_meta_string(obj, "resourceVersion"));
	return r;
}

static int watch_line(const char *line, size_t len, void *userdata)
{
	struct request *q = userdata;
	_cleanup_(cJSON_Deletep) cJSON *ev = cJSON_ParseWithLength(line, len);

	if (!ev) {
		trouble(q->client, "%s watch: undecodable event (%zu bytes), ignoring",
			q->reflector->what, len);
		return 0;
	}
	/* A successful event means the connection is healthy again. */
	q->reflector->backoff_usec = 0;
	q->events++;
	return watch_event(q->reflector, ev);
}

static char *kind_url(struct reflector *rf, const char *params)
{
	struct kube_client *c = rf->client;

	/* ServiceCIDRs are cluster-scoped and never filtered by the scope. */
	if (rf->kind == KUBE_KIND_SERVICE_CIDR)
		return strdup_printf("%s/apis/networking.k8s.io/%s/servicecidrs?%s", c->config->server,
				     c->cidr_api == CIDR_API_V1 ? "v1" : "v1beta1", params);
	return kube_watch_url(c->config->server, &rf->spec, c->api, params);
}

static char *reflector_url(struct reflector *rf, bool watch)
{
	_cleanup_(freep) char *cont = NULL, *params = NULL;

	if (watch) {
		uint32_t spread = 0;

		if (getrandom(&spread, sizeof(spread), GRND_NONBLOCK) != sizeof(spread))
			spread = (uint32_t)now_usec(CLOCK_MONOTONIC);
		params = strdup_printf("watch=1&allowWatchBookmarks=true&resourceVersion=%s"
				       "&timeoutSeconds=%u",
				       rf->resource_version,
				       WATCH_TIMEOUT_MIN_SEC + spread % WATCH_TIMEOUT_SPREAD_SEC);
		return params ? kind_url(rf, params) : NULL;
	}
	if (rf->continue_token) {
		CURL *e = curl_easy_init();
		char *esc = e ? curl_easy_escape(e, rf->continue_token, 0) : NULL;

		cont = esc ? strdup_printf("&continue=%s", esc) : NULL;
		curl_free(esc);
		if (e)
			curl_easy_cleanup(e);
		if (!cont)
			return NULL;
	}
	params = strdup_printf("limit=%d%s", LIST_PAGE_SIZE, cont ? cont : "");
	return params ? kind_url(rf, params) : NULL;
}

static void reflector_run(struct reflector *rf);

static uint64_t stale_timeout(const struct kube_client *c)
{
	return c->stale_usec ? c->stale_usec : KUBE_WATCH_STALE_USEC_DEFAULT;
}

/*
 * A watch on which nothing arrived for too long may hang on a connection
 * that died silently (or on a server that hangs): open it again. The timer
 * is not moved on every event; when it fires early it is set again.
 */
static int on_stale(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct reflector *rf = userdata;
	struct kube_client *c = rf->client;
	uint64_t last = rf->last_data_usec > rf->since_usec ? rf->last_data_usec : rf->since_usec;
	uint64_t deadline = last + stale_timeout(c);

	if (now_usec(CLOCK_MONOTONIC) < deadline) {
		sd_event_source_set_time(s, deadline);
		sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
		return 0;
	}
	rf->stale_reconnects++;
	if (!rf->down_since_usec)
		rf->down_since_usec = now_usec(CLOCK_MONOTONIC);
	trouble(c, "%s watch: nothing from the API server for %" PRIu64 " s: reconnecting",
		rf->what, stale_timeout(c) / USEC_PER_SEC);
	request_cancel(c, &rf->request);
	rf->watching = false;
	rf->stale = sd_event_source_disable_unref(rf->stale);
	reflector_run(rf);
	return 0;
}

static void stale_arm(struct reflector *rf)
{
	struct kube_client *c = rf->client;

	rf->stale = sd_event_source_disable_unref(rf->stale);
	if (sd_event_add_time_relative(c->event, &rf->stale, CLOCK_MONOTONIC, stale_timeout(c),
				       USEC_PER_SEC, on_stale, rf) < 0)
		trouble(c, "cannot arm the %s watch staleness timer", rf->what);
}

static void reflector_run(struct reflector *rf)
{
	struct kube_client *c = rf->client;
	_cleanup_(freep) char *url = NULL;
	bool watch = rf->resource_version && !rf->listing;
	int r;

	rf->retry = sd_event_source_disable_unref(rf->retry);
	if (!watch && !rf->listing) {
		rf->listing = true;
		rf->generation++;
		set_string(&rf->continue_token, NULL);
		if (rf->synced)
			rf->relists++;
		rf->since_usec = now_usec(CLOCK_MONOTONIC);
	}
	url = reflector_url(rf, watch);
	r = url ? request_start(c, rf, watch ? REQUEST_WATCH : REQUEST_LIST, url, &rf->request)
		: -ENOMEM;
	if (r < 0) {
		trouble(c, "cannot start %s %s: %s", rf->what, watch ? "watch" : "list",
			strerror(-r));
		reflector_retry_later(rf);
		return;
	}
	if (watch) {
		rf->watches++;
		rf->since_usec = now_usec(CLOCK_MONOTONIC);
		stale_arm(rf);
	}
}

static void reflector_free(struct kube_client *c, struct reflector *rf);

static bool kind_synced(const struct kube_client *c, enum kube_kind kind)
{
	for (size_t i = 0; i < c->n_reflectors; i++)
		if (c->reflectors[i]->kind == kind && !c->reflectors[i]->synced)
			return false;
	return true;
}

/*
 * After a scope change, once every new watch of the kind has listed: what
 * only the dropped watches had is gone. Until then they keep it, so that
 * a reload from namespace a to all namespaces deletes nothing meanwhile.
 */
static void sweep_retired(struct kube_client *c, enum kube_kind kind)
{
	_cleanup_(freep) struct reflector **gone = NULL;
	size_t j = 0, n_gone = 0;

	for (size_t i = 0; i < c->n_reflectors; i++)
		if (c->reflectors[i]->kind == kind && c->reflectors[i]->needs_list)
			return;
	if (c->n_retired == 0)
		return;
	gone = calloc(c->n_retired, sizeof(*gone));
	if (!gone)
		return; /* they stay until the next completed list */
	/* Out of c->retired first: deliver_delete() looks there for other
	 * holders, and must see neither a freed watch nor one on its way out. */
	for (size_t i = 0; i < c->n_retired; i++) {
		if (c->retired[i]->kind == kind)
			gone[n_gone++] = c->retired[i];
		else
			c->retired[j++] = c->retired[i];
	}
	c->n_retired = j;
	for (size_t i = 0; i < n_gone; i++) {
		struct reflector *rf = gone[i];
		struct known *k, *t;

		HASH_ITER(hh, rf->known, k, t) {
			_cleanup_(freep) char *key = strdup(k->key);
			char *slash;

			known_free(rf, k);
			if (!key)
				continue; /* out of memory: it stays, as after a failed list */
			slash = strchr(key, '/');
			*slash = 0;
			deliver_delete(rf, key, slash + 1);
		}
		reflector_free(c, rf);
	}
}

/* Everything not seen by the list that just completed is gone. */
static void list_complete(struct reflector *rf)
{
	struct known *k, *t;

	HASH_ITER(hh, rf->known, k, t) {
		char *slash;

		if (k->generation == rf->generation)
			continue;
		slash = strchr(k->key, '/');
		*slash = 0;
		deliver_delete(rf, k->key, slash + 1);
		*slash = '/';
		known_free(rf, k);
	}
	rf->listing = false;
	rf->backoff_usec = 0;
	rf->synced = true;
	rf->needs_list = false;
	rf->lists++;
	sweep_retired(rf->client, rf->kind);
	if (rf->kind == KUBE_KIND_SERVICE_CIDR)
		rf->client->cidr_synced_reported = true;
	if (kind_synced(rf->client, rf->kind))
		rf->client->handlers.synced(rf->client->userdata, rf->kind);
}

static int list_page(struct reflector *rf, struct request *q)
{
	_cleanup_(cJSON_Deletep) cJSON *page = NULL;
	const cJSON *meta, *items, *item, *rv, *cont;
	int r;

	page = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
	meta = cJSON_GetObjectItemCaseSensitive(page, "metadata");
	items = cJSON_GetObjectItemCaseSensitive(page, "items");
	rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
	if (!cJSON_IsString(rv) || !(cJSON_IsArray(items) || cJSON_IsNull(items)))
		return -EBADMSG;
	cJSON_ArrayForEach(item, items) {
		r = handle_object(rf, item, false);
		if (r < 0)
			return r;
	}
	cont = cJSON_GetObjectItemCaseSensitive(meta, "continue");
	set_string(&rf->continue_token,
		   cJSON_IsString(cont) && cont->valuestring[0] ? cont->valuestring : NULL);
	if (!rf->continue_token) {
		set_string(&rf->resource_version, rv->valuestring);
		list_complete(rf);
	}
	return 0;
}

static void service_cidrs_synced(struct kube_client *c)
{
	if (c->cidr_synced_reported)
		return;
	c->cidr_synced_reported = true;
	c->handlers.synced(c->userdata, KUBE_KIND_SERVICE_CIDR);
}

/*
 * RBAC without the servicecidrs rule: say so once and carry on without
 * them (what is known stays); the list is retried with backoff, so a rule
 * added later takes effect. Nothing waits for them meanwhile.
 */
static void service_cidrs_forbidden(struct reflector *rf, const char *why)
{
	struct kube_client *c = rf->client;

	if (c->cidr_forbidden) {
		log_debug("kube: listing ServiceCIDRs still refused: %s", why);
		return;
	}
	c->cidr_forbidden = true;
	trouble(c, "ServiceCIDRs cannot be read (%s): carrying on without them; "
		"grant get, list and watch on servicecidrs in networking.k8s.io", why);
	service_cidrs_synced(c);
}

static void list_done(struct reflector *rf, struct request *q, CURLcode result, long status)
{
	char why[512];
	int r;

	if (result == CURLE_OK && status == 200) {
		rf->last_data_usec = now_usec(CLOCK_MONOTONIC);
		rf->down_since_usec = 0;
		if (rf->kind == KUBE_KIND_SERVICE_CIDR)
			rf->client->cidr_forbidden = false;
		r = list_page(rf, q);
		if (r >= 0) {
			reflector_run(rf); /* next page, or the watch */
			return;
		}
		snprintf(why, sizeof(why), "%s", r == -EBADMSG ? "malformed list" : strerror(-r));
	} else {
		describe_failure(q, result, status, why, sizeof(why));
	}
	if (status == 410) {
		/* The continue token expired: start the list over. */
		rf->listing = false;
		set_string(&rf->continue_token, NULL);
	}
	if (!rf->down_since_usec)
		rf->down_since_usec = now_usec(CLOCK_MONOTONIC);
	if (rf->kind == KUBE_KIND_SERVICE_CIDR && status == 403) {
		service_cidrs_forbidden(rf, why);
		reflector_retry_later(rf);
		return;
	}
	trouble(rf->client, "listing %s failed: %s%s", rf->what, why,
		status == 403 && !rf->spec.namespace ?
		" (an identity with only namespaced permissions needs --namespaces)" : "");
	/* An optional kind: the Services do not wait for its retries. */
	if (rf->kind == KUBE_KIND_SERVICE_CIDR)
		service_cidrs_synced(rf->client);
	reflector_retry_later(rf);
}

static void watch_done(struct reflector *rf, struct request *q, CURLcode result, long status)
{
	char why[512];

	if (q->failure == -ESTALE || status == 410) {
		log_debug("kube: %s watch: resourceVersion expired, relisting", rf->what);
		set_string(&rf->resource_version, NULL);
		reflector_run(rf);
		return;
	}
	if (result == CURLE_OK && status == 200 && q->failure == 0) {
		rf->last_data_usec = now_usec(CLOCK_MONOTONIC);
		/* The server ended the watch (timeoutSeconds): carry on. A
		 * watch that ends at once without a single event (a proxy
		 * closing streams) is retried with backoff, as client-go does
		 * for a "very short watch". */
		if (q->events > 0 || now_usec(CLOCK_MONOTONIC) - q->start_usec >= USEC_PER_SEC)
			reflector_run(rf);
		else
			reflector_retry_later(rf);
		return;
	}
	describe_failure(q, result, status, why, sizeof(why));
	if (q->failure == -EMSGSIZE || q->failure == -EPROTO)
		set_string(&rf->resource_version, NULL);
	if (!rf->down_since_usec)
		rf->down_since_usec = now_usec(CLOCK_MONOTONIC);
	trouble(rf->client, "watch of %s ended: %s", rf->what, why);
	reflector_retry_later(rf);
}

/* ---- discovery ---------------------------------------------------------- */

static void start_reflectors(struct kube_client *c);
static void discovery_run(struct kube_client *c);

static int on_discovery_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	discovery_run(userdata);
	return 0;
}

static bool serves(const struct request *q, const char *resource)
{
	_cleanup_(cJSON_Deletep) cJSON *j = cJSON_ParseWithLength(q->body ? q->body : "", q->body_len);
	const cJSON *res;

	cJSON_ArrayForEach(res, cJSON_GetObjectItemCaseSensitive(j, "resources")) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(res, "name");

		if (cJSON_IsString(name) && streq(name->valuestring, resource))
			return true;
	}
	return false;
}

static void discovery_retry_later(struct kube_client *c)
{
	c->discovery_retry = sd_event_source_disable_unref(c->discovery_retry);
	if (sd_event_add_time_relative(c->event, &c->discovery_retry, CLOCK_MONOTONIC,
				       backoff_next(&c->discovery_backoff_usec), 0,
				       on_discovery_retry, c) < 0)
		trouble(c, "cannot arm discovery retry timer");
}

/* Steps 2 and 3, after the watches started: ServiceCIDRs, optional. */
static void discovery_cidr_done(struct kube_client *c, struct request *q, CURLcode result,
				long status)
{
	char why[512];

	if (result == CURLE_OK && (status == 200 || status == 404)) {
		if (status == 200 && serves(q, "servicecidrs"))
			c->cidr_api = c->discovery_step == 2 ? CIDR_API_V1 : CIDR_API_V1BETA1;
		else if (++c->discovery_step < 4) {
			discovery_run(c);
			return;
		} else
			c->cidr_api = CIDR_API_NONE;
		log_debug("kube: ServiceCIDRs from %s",
			  c->cidr_api == CIDR_API_NONE ? "nowhere (no such API)" :
			  kube_client_service_cidr_api(c, NULL));
		if (c->cidr_api == CIDR_API_NONE)
			service_cidrs_synced(c);
		else
			start_reflectors(c);
		return;
	}
	describe_failure(q, result, status, why, sizeof(why));
	if (status == 403) {
		/* Discovery is open to every identity by default; without it
		 * there is no telling, and the Services must not wait. */
		c->cidr_api = CIDR_API_NONE;
		c->cidr_forbidden = true;
		trouble(c, "ServiceCIDR API discovery refused (%s): carrying on without them", why);
		service_cidrs_synced(c);
		return;
	}
	trouble(c, "ServiceCIDR API discovery at %s failed: %s", c->config->server, why);
	service_cidrs_synced(c); /* retried, but nothing waits for it */
	discovery_retry_later(c);
}

static void discovery_done(struct kube_client *c, struct request *q, CURLcode result, long status)
{
	char why[512];

	if (c->discovery_step >= 2) {
		discovery_cidr_done(c, q, result, status);
		return;
	}
	if (result == CURLE_OK && (status == 200 || status == 404)) {
		if (status == 200 && serves(q, "endpointslices"))
			c->api = c->discovery_step == 0 ? KUBE_API_SLICES_V1 : KUBE_API_SLICES_V1BETA1;
		else if (++c->discovery_step < 2) {
			discovery_run(c);
			return;
		} else
			c->api = KUBE_API_ENDPOINTS_V1;
		start_reflectors(c);
		if (c->handlers.service_cidr_upsert) {
			c->discovery_backoff_usec = 0;
			c->discovery_step = 2;
			discovery_run(c);
		} else {
			c->cidr_api = CIDR_API_NONE;
		}
		return;
	}
	describe_failure(q, result, status, why, sizeof(why));
	trouble(c, "API discovery at %s failed: %s", c->config->server, why);
	discovery_retry_later(c);
}

static void discovery_run(struct kube_client *c)
{
	static const char *const paths[] = { "/apis/discovery.k8s.io/v1",
					     "/apis/discovery.k8s.io/v1beta1",
					     "/apis/networking.k8s.io/v1",
					     "/apis/networking.k8s.io/v1beta1" };
	_cleanup_(freep) char *url = strdup_printf("%s%s", c->config->server,
						   paths[c->discovery_step]);
	int r;

	r = url ? request_start(c, NULL, REQUEST_DISCOVERY, url, &c->discovery) : -ENOMEM;
	if (r < 0) {
		trouble(c, "cannot start API discovery: %s", strerror(-r));
		discovery_retry_later(c);
	}
}

static void on_done(void *priv, CURLcode result)
{
	struct request *q = priv;
	struct kube_client *c = q->client;
	struct reflector *rf = q->reflector;
	long status = 0;

	curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 0 && result != CURLE_OK)
		count_error(c, 0);
	else if (status != 200 && status != 0 && !(q->type == REQUEST_DISCOVERY && status == 404))
		count_error(c, status);
	if (q->type == REQUEST_WATCH) {
		rf->stale = sd_event_source_disable_unref(rf->stale);
		rf->watching = false;
	}
	if (q->type == REQUEST_DISCOVERY) {
		c->discovery = NULL;
		discovery_done(c, q, result, status);
	} else {
		assert(rf); /* list and watch requests always have one */
		rf->request = NULL;
		if (q->type == REQUEST_LIST)
			list_done(rf, q, result, status);
		else
			watch_done(rf, q, result, status);
	}
	request_free(q);
}

static struct reflector *reflector_new(struct kube_client *c, struct kube_watch_spec *spec)
{
	struct reflector *rf = calloc(1, sizeof(*rf));

	if (!rf)
		return NULL;
	rf->client = c;
	rf->kind = spec->kind;
	rf->spec = *spec; /* takes its strings */
	*spec = (struct kube_watch_spec){};
	rf->resource = kube_watch_resource(rf->kind, c->api);
	rf->scope_text = kube_watch_scope_text(&rf->spec);
	if (rf->spec.namespace || rf->spec.label_selector)
		rf->what = strdup_printf("%s (%s)", rf->resource, rf->scope_text ? rf->scope_text : "?");
	else
		rf->what = strdup(rf->resource);
	if (!rf->scope_text || !rf->what) {
		reflector_free(c, rf);
		return NULL;
	}
	return rf;
}

/* Stop a reflector's requests and timers; what it knows stays. */
static void reflector_stop(struct kube_client *c, struct reflector *rf)
{
	request_cancel(c, &rf->request);
	rf->retry = sd_event_source_disable_unref(rf->retry);
	rf->stale = sd_event_source_disable_unref(rf->stale);
	rf->watching = false;
	rf->listing = false;
}

/*
 * Make the reflectors match the scope: those whose watch is still wanted
 * carry on, the others retire, new ones start listing. Before discovery
 * there is nothing to do: discovery_done() calls this again.
 */
static int reflectors_update(struct kube_client *c)
{
	struct kube_watch_spec *specs = NULL;
	struct reflector **keep = NULL, **retired;
	size_t n_specs = 0, n_started = 0;
	bool changed[_KUBE_KIND_MAX] = {};
	int r;

	if (c->api == KUBE_API_UNKNOWN)
		return 0;
	r = kube_scope_watches(&c->scope, &specs, &n_specs);
	if (r < 0)
		return r;
	if (c->cidr_api == CIDR_API_V1 || c->cidr_api == CIDR_API_V1BETA1) {
		struct kube_watch_spec *v = reallocarray(specs, n_specs + 1, sizeof(*v));

		if (!v) {
			kube_watch_specs_free(specs, n_specs);
			return -ENOMEM;
		}
		specs = v;
		specs[n_specs++] = (struct kube_watch_spec){ .kind = KUBE_KIND_SERVICE_CIDR };
	}
	/* realloc may move the block even when the next allocation fails: keep
	 * what it returned at once. */
	retired = reallocarray(c->retired, c->n_retired + c->n_reflectors + 1, sizeof(*retired));
	if (retired)
		c->retired = retired;
	keep = calloc(n_specs, sizeof(*keep));
	if (!keep || !retired) {
		free(keep);
		kube_watch_specs_free(specs, n_specs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_specs; i++)
		for (size_t j = 0; j < c->n_reflectors; j++)
			if (c->reflectors[j] && kube_watch_spec_equal(&specs[i], &c->reflectors[j]->spec)) {
				keep[i] = c->reflectors[j];
				c->reflectors[j] = NULL;
				break;
			}
	/* The rest retire (or go at once when they know nothing). */
	for (size_t j = 0; j < c->n_reflectors; j++) {
		struct reflector *rf = c->reflectors[j];

		if (!rf)
			continue;
		reflector_stop(c, rf);
		changed[rf->kind] = true;
		if (!rf->known) {
			reflector_free(c, rf);
			continue;
		}
		c->retired[c->n_retired++] = rf;
	}
	for (size_t i = 0; i < n_specs; i++) {
		if (keep[i])
			continue;
		keep[i] = reflector_new(c, &specs[i]);
		if (!keep[i]) {
			r = -ENOMEM;
			continue;
		}
		keep[i]->needs_list = true;
		changed[keep[i]->kind] = true;
	}
	kube_watch_specs_free(specs, n_specs);
	/* Whatever failed to allocate is left out: fewer watches, never a crash. */
	free(c->reflectors);
	c->reflectors = keep;
	c->n_reflectors = 0;
	for (size_t i = 0; i < n_specs; i++)
		if (keep[i])
			c->reflectors[c->n_reflectors++] = keep[i];
	for (size_t i = 0; i < c->n_reflectors; i++)
		if (c->reflectors[i]->needs_list && !c->reflectors[i]->request &&
		    !c->reflectors[i]->retry) {
			reflector_run(c->reflectors[i]);
			n_started++;
		}
	for (int k = 0; k < _KUBE_KIND_MAX; k++)
		if (changed[k])
			sweep_retired(c, k);
	log_debug("kube: %zu watches (%zu new), %zu retired", c->n_reflectors, n_started,
		  c->n_retired);
	return r;
}

static void start_reflectors(struct kube_client *c)
{
	int r;

	log_debug("kube: endpoints from %s", kube_client_endpoints_api(c));
	r = reflectors_update(c);
	if (r < 0)
		trouble(c, "cannot start the watches: %s", strerror(-r));
}

const char *kube_client_endpoints_api(const struct kube_client *c)
{
	switch (c->api) {
	case KUBE_API_SLICES_V1:
		return "discovery.k8s.io/v1 EndpointSlices";
	case KUBE_API_SLICES_V1BETA1:
		return "discovery.k8s.io/v1beta1 EndpointSlices";
	case KUBE_API_ENDPOINTS_V1:
		return "core/v1 Endpoints";
	default:
		return "(not discovered yet)";
	}
}

const char *kube_client_service_cidr_api(const struct kube_client *c, bool *ret_forbidden)
{
	if (ret_forbidden)
		*ret_forbidden = c->cidr_forbidden;
	switch (c->cidr_api) {
	case CIDR_API_V1:
		return "networking.k8s.io/v1";
	case CIDR_API_V1BETA1:
		return "networking.k8s.io/v1beta1";
	default:
		return NULL;
	}
}

/* ---- lifecycle ---------------------------------------------------------- */

int kube_client_new(sd_event *event, const struct kube_config *config,
		    const struct kube_handlers *handlers, void *userdata,
		    struct kube_client **ret)
{
	struct kube_client *c;
	int r;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->event = sd_event_ref(event);
	c->config = config;
	c->handlers = *handlers;
	c->userdata = userdata;
	r = http_new(event, on_done, &c->http);
	if (r < 0) {
		kube_client_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

static void reflector_free(struct kube_client *c, struct reflector *rf)
{
	struct known *k, *t;

	if (!rf)
		return;
	reflector_stop(c, rf);
	HASH_ITER(hh, rf->known, k, t)
		known_free(rf, k);
	kube_watch_spec_done(&rf->spec);
	free(rf->scope_text);
	free(rf->what);
	free(rf->resource_version);
	free(rf->continue_token);
	free(rf);
}

static void scope_done(struct kube_scope *s)
{
	free((char *)s->namespaces);
	free((char *)s->label_selector);
	free((char *)s->dns_service);
	*s = (struct kube_scope){};
}

struct kube_client *kube_client_free(struct kube_client *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_reflectors; i++)
		reflector_free(c, c->reflectors[i]);
	for (size_t i = 0; i < c->n_retired; i++)
		reflector_free(c, c->retired[i]);
	free(c->reflectors);
	free(c->retired);
	scope_done(&c->scope);
	request_cancel(c, &c->discovery);
	c->discovery_retry = sd_event_source_disable_unref(c->discovery_retry);
	http_free(c->http);
	sd_event_unref(c->event);
	free(c);
	curl_global_cleanup();
	return NULL;
}

int kube_client_start(struct kube_client *c)
{
	c->discovery_step = 0;
	discovery_run(c);
	return 0;
}

int kube_client_set_scope(struct kube_client *c, const struct kube_scope *scope)
{
	struct kube_scope s = {
		.namespaces = scope->namespaces && *scope->namespaces ? strdup(scope->namespaces) : NULL,
		.label_selector = scope->label_selector && *scope->label_selector ?
			strdup(scope->label_selector) : NULL,
		.dns_service = scope->dns_service && *scope->dns_service ?
			strdup(scope->dns_service) : NULL,
	};

	if ((!s.namespaces && scope->namespaces && *scope->namespaces) ||
	    (!s.label_selector && scope->label_selector && *scope->label_selector) ||
	    (!s.dns_service && scope->dns_service && *scope->dns_service)) {
		scope_done(&s);
		return -ENOMEM;
	}
	scope_done(&c->scope);
	c->scope = s;
	return reflectors_update(c);
}

const struct kube_scope *kube_client_scope(const struct kube_client *c)
{
	return &c->scope;
}

void kube_client_set_config(struct kube_client *c, const struct kube_config *config)
{
	c->config = config;
	if (c->api == KUBE_API_UNKNOWN) {
		request_cancel(c, &c->discovery);
		c->discovery_retry = sd_event_source_disable_unref(c->discovery_retry);
		c->discovery_backoff_usec = 0;
		c->discovery_step = 0;
		discovery_run(c);
		return;
	}
	for (size_t i = 0; i < c->n_reflectors; i++) {
		struct reflector *rf = c->reflectors[i];

		reflector_stop(c, rf);
		rf->backoff_usec = 0;
		set_string(&rf->resource_version, NULL);
		reflector_run(rf);
	}
}

/* ---- status ------------------------------------------------------------- */

void kube_client_set_stale_timeout(struct kube_client *c, uint64_t usec)
{
	c->stale_usec = usec;
}

uint64_t kube_client_get_stale_timeout(const struct kube_client *c)
{
	return stale_timeout(c);
}

static void watch_info(const struct reflector *rf, struct kube_watch_info *ret)
{
	*ret = (struct kube_watch_info){
		.kind = rf->kind,
		.resource = rf->resource,
		.scope = rf->scope_text,
		.listing = rf->listing,
		.watching = rf->watching,
		.synced = rf->synced,
		.since_usec = rf->since_usec,
		.last_data_usec = rf->last_data_usec,
		.down_since_usec = rf->down_since_usec,
		.lists = rf->lists,
		.relists = rf->relists,
		.watch_restarts = rf->watches > 0 ? rf->watches - 1 : 0,
		.stale_reconnects = rf->stale_reconnects,
	};
}

void kube_client_watch_info(const struct kube_client *c, enum kube_kind kind,
			    struct kube_watch_info *ret)
{
	bool first = true;

	*ret = (struct kube_watch_info){ .kind = kind };
	for (size_t i = 0; i < c->n_reflectors; i++) {
		struct kube_watch_info w;

		if (c->reflectors[i]->kind != kind)
			continue;
		watch_info(c->reflectors[i], &w);
		if (first) {
			*ret = w;
			ret->scope = NULL;
			first = false;
			continue;
		}
		ret->listing = ret->listing || w.listing;
		ret->watching = ret->watching && w.watching;
		ret->synced = ret->synced && w.synced;
		if (w.since_usec > ret->since_usec)
			ret->since_usec = w.since_usec;
		if (w.last_data_usec < ret->last_data_usec)
			ret->last_data_usec = w.last_data_usec;
		if (w.down_since_usec &&
		    (!ret->down_since_usec || w.down_since_usec < ret->down_since_usec))
			ret->down_since_usec = w.down_since_usec;
		ret->lists += w.lists;
		ret->relists += w.relists;
		ret->watch_restarts += w.watch_restarts;
		ret->stale_reconnects += w.stale_reconnects;
	}
}

size_t kube_client_watches(const struct kube_client *c, struct kube_watch_info *ret, size_t max)
{
	for (size_t i = 0; i < c->n_reflectors && i < max; i++)
		watch_info(c->reflectors[i], &ret[i]);
	return c->n_reflectors;
}

size_t kube_client_api_errors(const struct kube_client *c,
			      struct kube_api_error_count ret[KUBE_API_ERROR_CODES])
{
	memcpy(ret, c->errors, c->n_errors * sizeof(c->errors[0]));
	return c->n_errors;
}
