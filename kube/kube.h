/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * kube/: everything that talks to or about the Kubernetes API.
 *
 *  - kubeconfig loading (libyaml), pure;
 *  - decoding of Service, EndpointSlice (discovery.k8s.io/v1 and v1beta1)
 *    and core/v1 Endpoints objects (cJSON) into the typed objects below,
 *    pure;
 *  - framing of newline-delimited watch streams, pure;
 *  - the client: discovery, paginated LIST, WATCH with bookmarks, relist on
 *    410 Gone, reconnect with jittered backoff (libcurl multi on sd-event).
 *
 * Data flows one way: the client hands decoded objects to the caller's
 * handlers, which own them from then on.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct sd_event;

/* Bounds on what the API server can make us hold. */
#define KUBE_MAX_EVENT_SIZE (16u << 20)   /* one watch event / list page */
#define KUBE_MAX_NAME_LEN 253u
#define KUBE_MAX_PORTS 1024u              /* per Service / per slice */
#define KUBE_MAX_ENDPOINTS 10000u         /* per slice / per Endpoints object */
#define KUBE_MAX_IPS 16u                  /* clusterIPs, externalIPs, LB ingress */
#define KUBE_MAX_HINTS 16u                /* hints.forZones per endpoint (API: 8) */

struct kube_ip {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
		uint8_t bytes[16];
	};
};

/* Parse a textual address ("10.0.0.1", "fd00::1") into ret. 0 or -EINVAL. */
int kube_ip_parse(const char *s, struct kube_ip *ret);
/* Format into buf (at least INET6_ADDRSTRLEN bytes); returns buf. */
const char *kube_ip_format(const struct kube_ip *ip, char *buf, size_t len);
bool kube_ip_equal(const struct kube_ip *a, const struct kube_ip *b);

/* IPPROTO_TCP/UDP/SCTP from "TCP"/"UDP"/"SCTP" (NULL means TCP); -EINVAL. */
int kube_protocol_parse(const char *s);
const char *kube_protocol_name(int proto); /* "tcp", "udp", "sctp" */

/* ---- kubeconfig -------------------------------------------------------- */

struct kube_config {
	char *path;        /* the file that was loaded */
	char *context;     /* context name used */
	char *cluster;     /* cluster name used */
	char *user;        /* user (AuthInfo) name used */
	char *server;      /* https://host:port, no trailing slash */
	char *tls_server_name;

	/* Trust: a file path (absolute) or PEM bytes; neither = system CAs. */
	char *ca_file;
	char *ca_data;
	size_t ca_data_len;
	bool insecure_skip_tls_verify;

	/* Client certificate: file paths (absolute) or PEM bytes. */
	char *cert_file;
	char *cert_data;
	size_t cert_data_len;
	char *key_file;
	char *key_data;
	size_t key_data_len;

	/* Bearer token, inline or from a file (absolute path, re-read by the
	 * client whenever it changes: bound tokens rotate). */
	char *token;
	char *token_file;
	char *username;
	char *password;
};

/*
 * Load a kubeconfig. context NULL means current-context. Relative file
 * paths resolve against the kubeconfig's directory (as kubectl does);
 * "-data" fields are base64 and are decoded here.
 *
 * On failure returns -errno and, when ret_error is non-NULL, an allocated
 * message naming the file and the key, e.g.
 *   "/etc/kube-annex/kubeconfig: users[0] "ka": user: no credentials
 *    (token, tokenFile, client-certificate or username)".
 * -ENOENT, -EACCES, -EISDIR...: the file cannot be read; -EFBIG: over 1 MiB;
 * -EOPNOTSUPP: the user needs an exec or auth-provider plugin; -EINVAL:
 * anything else kubectl would reject too. On success *ret_error is NULL.
 */
int kube_config_load(const char *path, const char *context, struct kube_config **ret,
		     char **ret_error);
struct kube_config *kube_config_free(struct kube_config *c);

/* Read a token file: contents with surrounding whitespace stripped. -EINVAL
 * when empty or when it holds control characters (it goes into an HTTP
 * header), -EFBIG over 64 KiB. */
int kube_token_read(const char *path, char **ret_token);

/* ---- objects ----------------------------------------------------------- */

enum kube_service_type {
	KUBE_SERVICE_CLUSTER_IP,
	KUBE_SERVICE_NODE_PORT,
	KUBE_SERVICE_LOAD_BALANCER,
	KUBE_SERVICE_EXTERNAL_NAME,
};

struct kube_service_port {
	char *name;        /* "" when unnamed, never NULL */
	int protocol;      /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	uint16_t port;
	uint16_t node_port; /* 0 when none */
	char *target_port; /* as written: "8080" or a name; NULL when unset */
};

struct kube_service {
	char *namespace;
	char *name;
	char *resource_version;
	enum kube_service_type type;
	bool headless;          /* spec.clusterIP == "None" */
	/* Address lists are allocated to size (at most KUBE_MAX_IPS each):
	 * fixed arrays cost ~1 KB per Service, 10 MB at 10k Services. */
	struct kube_ip *cluster_ips; /* clusterIPs, else clusterIP */
	size_t n_cluster_ips;
	struct kube_service_port *ports;
	size_t n_ports;
	struct kube_ip *external_ips;
	size_t n_external_ips;
	/* status.loadBalancer.ingress[].ip, except entries with ipMode Proxy */
	struct kube_ip *lb_ips;
	size_t n_lb_ips;
	bool affinity_client_ip;
	uint32_t affinity_timeout_sec; /* default 10800 when ClientIP */
	bool internal_traffic_local;
	bool external_traffic_local;
	bool prefer_close;      /* trafficDistribution: PreferClose / PreferSameZone */
	char *proxy_name;       /* label service.kubernetes.io/service-proxy-name */
	bool headless_label;    /* label service.kubernetes.io/headless present */
	char *external_name;    /* spec.externalName */
};

struct kube_endpoint_port {
	char *name;        /* "" when unnamed, never NULL */
	int protocol;
	uint16_t port;     /* 0 when unset: such a port is ignored */
};

struct kube_endpoint {
	struct kube_ip addr;    /* addresses[0] */
	bool ready;             /* conditions.ready == nil || true */
	bool serving;           /* conditions.serving == nil ? ready : value */
	bool terminating;       /* conditions.terminating == true */
	char *node_name;        /* NULL when unset */
	char *zone;             /* NULL when unset */
	char **hint_zones;      /* hints.forZones[].name */
	size_t n_hint_zones;
	bool has_hints;         /* n_hint_zones > 0 (kube-proxy's "has zone hints") */
};

/*
 * An EndpointSlice, or one subset of a core/v1 Endpoints object converted to
 * the same shape (one port list, one address family).
 */
struct kube_endpoint_slice {
	char *namespace;
	char *name;
	char *service_name;     /* label kubernetes.io/service-name; NULL if absent */
	int family;             /* AF_INET, AF_INET6; 0 for FQDN slices (ignored) */
	struct kube_endpoint_port *ports;
	size_t n_ports;
	struct kube_endpoint *endpoints;
	size_t n_endpoints;
	/* endpoints.kubernetes.io/last-change-trigger-time, CLOCK_REALTIME usec;
	 * 0 when absent. */
	uint64_t trigger_time_usec;
};

/*
 * Decoders. obj is one API object (the "object" of a watch event or an item
 * of a list). On failure they return -EINVAL (or -ENOMEM) and, when
 * ret_error is non-NULL, an allocated message naming the field, e.g.
 * "spec.ports[1].port: 70000 is out of range".
 *
 * An object that decodes is internally consistent: every address parsed,
 * every port in range, every bound above respected.
 */
int kube_service_decode(const struct cJSON *obj, struct kube_service **ret, char **ret_error);
int kube_endpoint_slice_decode(const struct cJSON *obj, struct kube_endpoint_slice **ret,
			       char **ret_error);
/* core/v1 Endpoints: one slice per (subset, family); *ret_n may be 0. */
int kube_endpoints_decode(const struct cJSON *obj, struct kube_endpoint_slice ***ret,
			  size_t *ret_n, char **ret_error);

/*
 * A ServiceCIDR (networking.k8s.io v1 or v1beta1, cluster-scoped): the
 * ranges the API server allocates ClusterIPs from. The API allows one
 * range per family; a few more are tolerated. One being deleted still
 * counts while it exists (its addresses may still be allocated), as
 * kube-proxy does.
 */
#define KUBE_MAX_CIDRS 4u               /* spec.cidrs per ServiceCIDR (API: 2) */
#define KUBE_MAX_SERVICE_CIDR_OBJECTS 64u /* ServiceCIDRs held at once */

struct kube_cidr {
	struct kube_ip addr; /* host bits zero */
	unsigned prefix;     /* 1 ..= 32 or 128 */
};

struct kube_service_cidr {
	char *name;
	struct kube_cidr cidrs[KUBE_MAX_CIDRS];
	size_t n_cidrs;
};

int kube_service_cidr_decode(const struct cJSON *obj, struct kube_service_cidr **ret,
			     char **ret_error);
struct kube_service_cidr *kube_service_cidr_free(struct kube_service_cidr *s);
/* "10.96.0.0/16" into ret: 0, or -EINVAL (with a message in *ret_error,
 * unless NULL) unless an address with its host bits zero and a prefix of
 * 1 ..= 32 or 128 written in plain decimal. */
int kube_cidr_parse(const char *s, struct kube_cidr *ret, char **ret_error);
/*
 * The union of the ranges of v[0..n) (NULL entries skipped): distinct,
 * sorted (IPv4 first, then by address and prefix) so that the same set
 * always gives the same rules. At most max go to ret; *ret_n is how many.
 * Returns 0, or -E2BIG when there were more than max (the first max of the
 * sorted union are in ret).
 */
int kube_service_cidrs_union(struct kube_service_cidr *const *v, size_t n, struct kube_cidr *ret,
			     size_t max, size_t *ret_n);

/* metadata.namespace / metadata.name / metadata.resourceVersion, or NULL. */
const char *kube_meta_string(const struct cJSON *obj, const char *field);

struct kube_service *kube_service_free(struct kube_service *s);
struct kube_endpoint_slice *kube_endpoint_slice_free(struct kube_endpoint_slice *s);
void kube_endpoint_slices_free(struct kube_endpoint_slice **v, size_t n);

/* ---- watch stream framing ---------------------------------------------- */

/*
 * Splits a byte stream into newline-terminated lines, however the stream is
 * cut into reads. A line longer than max (not counting "\n" or "\r\n") is
 * an error (-EMSGSIZE), noticed as soon as the buffered part exceeds max.
 * Each byte is searched once: long lines in small reads cost linear time.
 * buf holds at most one partial line (max + 1 bytes); reset frees it and
 * is also the destructor.
 */
struct kube_lines {
	char *buf;
	size_t len;
	size_t cap;
	size_t max;
};

typedef int (*kube_line_fn)(const char *line, size_t len, void *userdata);

void kube_lines_init(struct kube_lines *l, size_t max);
void kube_lines_reset(struct kube_lines *l);
/* Calls fn for every complete line, without its "\n" or "\r\n" and
 * NUL-terminated (line[len] == '\0'); empty lines are skipped. Stops and
 * returns fn's value when it is negative. After any error the framer has
 * reset itself and the rest of data is dropped: the stream is out of step. */
int kube_lines_feed(struct kube_lines *l, const char *data, size_t len, kube_line_fn fn,
		    void *userdata);

/* ---- client ------------------------------------------------------------ */

enum kube_kind {
	KUBE_KIND_SERVICE,
	KUBE_KIND_ENDPOINTS, /* EndpointSlices or, on old clusters, Endpoints */
	/* Optional: only where discovery finds it; not part of the import
	 * (a scope does not apply to it, a reload does not wait for it). */
	KUBE_KIND_SERVICE_CIDR,
	_KUBE_KIND_MAX,
};
/* Services and endpoints: the kinds a scope imports and a sync waits for. */
#define KUBE_IMPORT_KINDS (KUBE_KIND_ENDPOINTS + 1)

struct kube_handlers {
	/* Ownership of svc passes to the handler. */
	void (*service_upsert)(void *userdata, struct kube_service *svc);
	void (*service_delete)(void *userdata, const char *ns, const char *name);
	/* One EndpointSlice (n == 1) or one Endpoints object (n >= 0 slices),
	 * identified by its own namespace/name. Ownership of the slices and the
	 * array passes to the handler. */
	void (*endpoints_upsert)(void *userdata, const char *ns, const char *name,
				 struct kube_endpoint_slice **slices, size_t n);
	void (*endpoints_delete)(void *userdata, const char *ns, const char *name);
	/* ServiceCIDRs, cluster-scoped. Ownership of cidr passes to the
	 * handler. Optional (NULL: ServiceCIDRs are not watched). */
	void (*service_cidr_upsert)(void *userdata, struct kube_service_cidr *cidr);
	void (*service_cidr_delete)(void *userdata, const char *name);
	/* A LIST of kind completed (first list, or a relist) and every delete
	 * it implies was delivered, and every watch of that kind (each
	 * namespace of the scope) has completed a first LIST.
	 * KUBE_KIND_SERVICE_CIDR is also reported synced (once) when the
	 * cluster has no ServiceCIDR API or they cannot be read (403): the
	 * set is then as known as it will be. */
	void (*synced)(void *userdata, enum kube_kind kind);
	/* An object failed to decode: it is skipped; the handler logs. */
	void (*bad_object)(void *userdata, const char *kind, const char *ns, const char *name,
			   const char *error);
	/* Connection-level trouble (info for the log; the client retries). */
	void (*trouble)(void *userdata, const char *what);
};

/*
 * What is imported. Services and their endpoints of the listed namespaces
 * (each watched on its own, so namespaced RBAC is enough), or of all;
 * Services only when they match the label selector (EndpointSlices are
 * not filtered: the slices of Services not imported are simply unused).
 * dns_service, "namespace/name", is imported whatever the scope says,
 * through a watch of just that Service and its endpoints when it is
 * outside the namespaces or (for the Service) the selector may leave it
 * out.
 */
#define KUBE_MAX_NAMESPACES 64u
#define KUBE_MAX_SELECTOR_LEN 1024u

struct kube_scope {
	const char *namespaces;     /* "a,b"; NULL: all namespaces */
	const char *label_selector; /* NULL: all Services */
	const char *dns_service;    /* NULL: none */
};

/* Checks for the settings: namespace names, comma-separated, distinct;
 * a label selector's syntax ("app=web,tier in (a,b),!legacy"). -EINVAL
 * with a message that quotes the part at fault. */
int kube_namespaces_check(const char *list, char **ret_error);
int kube_label_selector_check(const char *selector, char **ret_error);

bool kube_scope_has_namespace(const struct kube_scope *s, const char *ns);
enum kube_scope_verdict {
	KUBE_SCOPE_IN,            /* imported (if it exists) */
	KUBE_SCOPE_IF_SELECTED,   /* imported if it matches the label selector */
	KUBE_SCOPE_OUT_NAMESPACE, /* its namespace is not watched */
};
enum kube_scope_verdict kube_scope_service(const struct kube_scope *s, const char *ns,
					   const char *name);

struct kube_client;

int kube_client_new(struct sd_event *event, const struct kube_config *config,
		    const struct kube_handlers *handlers, void *userdata,
		    struct kube_client **ret);
struct kube_client *kube_client_free(struct kube_client *c);
/* Start discovery, then LIST+WATCH of both kinds. */
int kube_client_start(struct kube_client *c);
/*
 * Import scope (copied); the default is the whole cluster. Called again
 * (a reload), watches whose scope is unchanged carry on, new ones list;
 * objects only the dropped watches had are deleted once every new watch
 * of their kind has listed (so nothing goes missing meanwhile). An object
 * stays as long as any watch of its kind has it.
 */
int kube_client_set_scope(struct kube_client *c, const struct kube_scope *scope);
/* The scope in effect (strings owned by the client). */
const struct kube_scope *kube_client_scope(const struct kube_client *c);
/*
 * Other credentials or another address for the same cluster (a reload):
 * open requests end and each kind is listed again with config. What is
 * known stays, so the relist delivers only the objects that changed
 * meanwhile, deletes for those that are gone, then synced(). The endpoints
 * API found by discovery is kept. config must stay valid until the client
 * is freed or given another one.
 */
void kube_client_set_config(struct kube_client *c, const struct kube_config *config);
/* Which API the endpoints come from, e.g. "discovery.k8s.io/v1". */
const char *kube_client_endpoints_api(const struct kube_client *c);
/* Where ServiceCIDRs come from: "networking.k8s.io/v1", "...v1beta1",
 * NULL when the cluster has none (or before discovery got that far);
 * *ret_forbidden when listing them was refused (403). */
const char *kube_client_service_cidr_api(const struct kube_client *c, bool *ret_forbidden);

/*
 * Watch staleness: a watch on which nothing (event, bookmark, the
 * response's start) has arrived for this long is dropped and opened again
 * from the same resourceVersion. The server ends every watch after 4 to 6
 * minutes (timeoutSeconds) and an idle cluster may send nothing else, so the
 * default is above that. 0 restores the default.
 */
#define KUBE_WATCH_STALE_USEC_DEFAULT (420 * UINT64_C(1000000))
void kube_client_set_stale_timeout(struct kube_client *c, uint64_t usec);
uint64_t kube_client_get_stale_timeout(const struct kube_client *c);

/* What one reflector is doing, for status and metrics. Times are
 * CLOCK_MONOTONIC microseconds, 0 for never. */
struct kube_watch_info {
	enum kube_kind kind;
	const char *resource;      /* "Service", "EndpointSlice", "Endpoints"; NULL before discovery */
	const char *scope;         /* "namespace a", ...; NULL for a kind's summary */
	bool listing;              /* a LIST is in progress */
	bool watching;             /* a WATCH is open and the server answered it */
	bool synced;               /* a first LIST has completed */
	uint64_t since_usec;       /* start of the current LIST or WATCH request */
	uint64_t last_data_usec;   /* last sign of the server: event, bookmark, list page,
				    * watch response, watch ended by the server */
	uint64_t down_since_usec;  /* first failure of the current outage (request failed,
				    * watch found stale), 0 while none */
	uint64_t lists;            /* LISTs completed */
	uint64_t relists;          /* LISTs started after the first complete one */
	uint64_t watch_restarts;   /* WATCHes started after the first */
	uint64_t stale_reconnects; /* watches dropped for silence */
};
/* A kind's watches together: listing if any lists, watching and synced if
 * all are, the oldest last data, the earliest outage, counters summed. */
void kube_client_watch_info(const struct kube_client *c, enum kube_kind kind,
			    struct kube_watch_info *ret);
/* Each watch on its own, in scope order; returns how many there are (at
 * most max are filled). Strings stay valid until the scope changes. */
size_t kube_client_watches(const struct kube_client *c, struct kube_watch_info *ret, size_t max);

/* Failed API requests by HTTP status: code 0 means no HTTP answer
 * (connection refused, TLS, timeout); error events of a watch count with
 * their code. At most KUBE_API_ERROR_CODES distinct codes are kept (the
 * rest count under the last slot's code -1). Returns how many are set. */
#define KUBE_API_ERROR_CODES 16
struct kube_api_error_count {
	long code;
	uint64_t count;
};
size_t kube_client_api_errors(const struct kube_client *c,
			      struct kube_api_error_count ret[KUBE_API_ERROR_CODES]);
