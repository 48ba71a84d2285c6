/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Settings: one table drives the command line, the configuration file,
 * the help text and reload's "what changed". See config.h.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "agent/config.h"
#include "kube/kube.h"
#include "nft/nft.h"

#define VALUE_MAX 4096u  /* one value, or a list joined with commas */
#define LIST_MAX 16u     /* items of a list value, unless the setting says */

enum kind {
	KIND_STRING,
	KIND_PATH, /* relative to the configuration file's directory */
	KIND_BOOL,
	KIND_MSEC,
	KIND_LIST, /* "a,b" on the command line, a YAML list (or "a,b") in the file */
};

struct setting {
	const char *key;    /* file key, and long option unless option is set */
	const char *option; /* the long option, when it is not the key */
	int short_option;
	bool negated;       /* the (bool) option sets false */
	enum kind kind;
	size_t offset;      /* of the field in struct config */
	/* NULL: any non-empty value; else a reason (allocated) why value is bad */
	char *(*check)(const char *value);
	const char *arg;    /* for --help */
	const char *help;
};

static char *check_msec(const char *value)
{
	char *end;
	unsigned long ms;

	errno = 0;
	ms = strtoul(value, &end, 10);
	if (errno || end == value || *end || value[0] == '-' || value[0] == '+' ||
	    ms > CONFIG_MAX_MIN_SYNC_INTERVAL_MS)
		return strdup_printf("'%s' is not a number of milliseconds between 0 and %u",
				     value, CONFIG_MAX_MIN_SYNC_INTERVAL_MS);
	return NULL;
}

static char *check_name(const char *value)
{
	if (strlen(value) > 253)
		return strdup_printf("'%.32s...' is longer than 253 characters", value);
	return NULL;
}

/* resolv/ checks its own options; keep its reason, drop its "--opt=value: ". */
static char *check_dns(const char *option, const char *value, size_t field)
{
	struct resolv_options o = {};
	_cleanup_(freep) char *error = NULL, *option_prefix = NULL;
	const char *reason;

	*(const char **)((char *)&o + field) = value;
	if (resolv_options_check(&o, &error) >= 0)
		return NULL;
	option_prefix = strdup_printf("--%s=%s: ", option, value);
	reason = error ? error : "invalid";
	if (option_prefix && strncmp(reason, option_prefix, strlen(option_prefix)) == 0)
		reason += strlen(option_prefix);
	return strdup_printf("'%s': %s", value, reason);
}

#define DNS_CHECK(fn, option, field)                                              \
	static char *fn(const char *value)                                       \
	{                                                                        \
		return check_dns(option, value, offsetof(struct resolv_options, field)); \
	}
DNS_CHECK(check_dns_mode, "dns", mode)
DNS_CHECK(check_cluster_domain, "cluster-domain", cluster_domain)
DNS_CHECK(check_dns_service, "dns-service", service)
DNS_CHECK(check_dns_address, "dns-address", addresses)
DNS_CHECK(check_dns_link_address, "dns-link-address", link_addresses)

/* nft/ parses service CIDRs (again when they are applied). */
static char *check_service_cidr(const char *value)
{
	struct kube_cidr cidrs[NFT_MAX_SERVICE_CIDRS];
	char *error = NULL;
	size_t n;

	if (nft_service_cidrs_parse(value, cidrs, &n, &error) >= 0)
		return NULL;
	return error ? error : strdup_printf("'%s': out of memory", value);
}

/* "ADDR:PORT", "[IPv6]:PORT" or "off" (agent/metrics.c parses it again). */
static char *check_listen_address(const char *value)
{
	char host[INET6_ADDRSTRLEN + 1], buf[16];
	const char *colon = strrchr(value, ':');
	bool bracketed = value[0] == '[';
	size_t len;
	char *end;
	unsigned long port;

	if (streq(value, "off"))
		return NULL;
	if (colon && (bracketed ? colon > value && colon[-1] == ']' : strchr(value, ':') == colon)) {
		len = (size_t)(colon - value) - (bracketed ? 2 : 0);
		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (len > 0 && len < sizeof(host) && !errno && end != colon + 1 && !*end &&
		    port > 0 && port <= 65535 && colon[1] != '+' && colon[1] != '-') {
			memcpy(host, value + bracketed, len);
			host[len] = 0;
			if ((!bracketed && inet_pton(AF_INET, host, buf) == 1) ||
			    (bracketed && inet_pton(AF_INET6, host, buf) == 1))
				return NULL;
		}
	}
	return strdup_printf("'%s' is not ADDRESS:PORT, [IPv6-ADDRESS]:PORT or off", value);
}

/* kube/ checks the scope settings; its reasons quote the value. */
static char *check_namespaces(const char *value)
{
	char *error = NULL;

	if (kube_namespaces_check(value, &error) >= 0)
		return NULL;
	return error ? error : strdup_printf("'%s': out of memory", value);
}

static char *check_label_selector(const char *value)
{
	char *error = NULL;

	if (kube_label_selector_check(value, &error) >= 0)
		return NULL;
	if (!error)
		return strdup_printf("'%s': out of memory", value);
	return error;
}

static char *check_path(const char *value)
{
	if (value[0] != '/' || strlen(value) >= 108)
		return strdup_printf("'%s' is not an absolute path shorter than 108 bytes", value);
	return NULL;
}

#define FIELD(f) offsetof(struct config, f)

static const struct setting settings[] = {
	{ "kubeconfig", NULL, 0, false, KIND_PATH, FIELD(kubeconfig), NULL, "FILE",
	  "cluster credentials (default: $KUBECONFIG, then\n" CONFIG_DEFAULT_KUBECONFIG ")" },
	{ "context", NULL, 0, false, KIND_STRING, FIELD(context), check_name, "NAME",
	  "kubeconfig context (default: current-context)" },
	{ "namespaces", NULL, 0, false, KIND_LIST, FIELD(namespaces), check_namespaces,
	  "NS[,NS]", "import only the Services of these namespaces (each\nwatched on its own: "
	  "namespaced RBAC is enough)" },
	{ "label-selector", NULL, 0, false, KIND_STRING, FIELD(label_selector),
	  check_label_selector, "SELECTOR",
	  "import only Services with matching labels\n(e.g. 'expose-to=legacy,tier!=db')" },
	{ "keep-rules", NULL, 0, false, KIND_BOOL, FIELD(keep_rules), NULL, NULL,
	  "leave the rules (and the DNS settings) in place on exit\n(a restart by systemd "
	  "does that by itself)" },
	{ "zone", NULL, 0, false, KIND_STRING, FIELD(zone), check_name, "NAME",
	  "this host's topology zone, for topology-aware hints" },
	{ "external-ips", "no-external-ips", 0, true, KIND_BOOL, FIELD(external_ips), NULL, NULL,
	  "do not DNAT Services' external and load-balancer IPs" },
	{ "service-cidr", NULL, 0, false, KIND_LIST, FIELD(service_cidrs), check_service_cidr,
	  "CIDR[,CIDR]", "the cluster's Service CIDR(s): drop connections to\naddresses in them "
	  "that no Service has" },
	{ "gateway", NULL, 0, false, KIND_BOOL, FIELD(gateway), NULL, NULL,
	  "also DNAT and masquerade connections that other\nmachines route through this host "
	  "to Services (the\nhost must forward; kube-annex sets no sysctl)" },
	{ "min-sync-interval", NULL, 0, false, KIND_MSEC, FIELD(min_sync_interval_usec),
	  check_msec, "MS", "minimum time between two syncs (default 5)" },
	{ "dns", NULL, 0, false, KIND_STRING, FIELD(dns_mode), check_dns_mode, "MODE",
	  "cluster DNS on this host: auto (default; systemd-resolved\nwhen it is the resolver, "
	  "else nothing), resolved, networkmanager\n(its dnsmasq), direct (rewrite " RESOLV_CONF_PATH "), off" },
	{ "cluster-domain", NULL, 0, false, KIND_STRING, FIELD(cluster_domain),
	  check_cluster_domain, "DOMAIN",
	  "names resolved by the cluster DNS (default " RESOLV_DEFAULT_DOMAIN ")" },
	{ "dns-service", NULL, 0, false, KIND_STRING, FIELD(dns_service), check_dns_service,
	  "NAMESPACE/NAME",
	  "the cluster DNS Service, followed live (default\n" RESOLV_DEFAULT_SERVICE ")" },
	{ "dns-address", NULL, 0, false, KIND_LIST, FIELD(dns_addresses), check_dns_address,
	  "IP[,IP]", "the cluster DNS ClusterIP(s), fixed instead of\nfollowing the Service" },
	{ "dns-link-address", NULL, 0, false, KIND_LIST, FIELD(dns_link_addresses),
	  check_dns_link_address, "IP[,IP]",
	  "address(es) of the " RESOLV_LINK_NAME " link, one per family\n(default "
	  RESOLV_DEFAULT_LINK_ADDRESS ")" },
	{ "metrics-address", NULL, 0, false, KIND_STRING, FIELD(metrics_address),
	  check_listen_address, "ADDR:PORT",
	  "serve /healthz, /livez and /metrics there, or off\n(default 127.0.0.1:10256)" },
	{ "control-socket", NULL, 0, false, KIND_STRING, FIELD(control_socket), check_path, "PATH",
	  "the socket `kube-annex status` and `explain` use\n(default /run/kube-annex/control)" },
	{ "verbose", NULL, 'v', false, KIND_BOOL, FIELD(verbose), NULL, NULL, "debug logging" },
};

#define N_SETTINGS ARRAY_SIZE(settings)

/* What the items of a list setting are, and how many it takes. */
static const char *list_items(const struct setting *s)
{
	return s->offset == FIELD(namespaces) ? "namespace names" : NULL;
}

static unsigned list_max(const struct setting *s)
{
	return s->offset == FIELD(namespaces) ? KUBE_MAX_NAMESPACES : LIST_MAX;
}

static void *mfree(void *p)
{
	free(p);
	return NULL;
}

static const struct setting *setting_find(const char *key)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (streq(settings[i].key, key))
			return &settings[i];
	return NULL;
}

static const char *setting_option(const struct setting *s)
{
	return s->option ? s->option : s->key;
}

/* ---- struct config ------------------------------------------------------ */

struct config *config_new(void)
{
	struct config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->min_sync_interval_usec = 5 * USEC_PER_MSEC;
	c->external_ips = true;
	return c;
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (settings[i].kind == KIND_STRING || settings[i].kind == KIND_PATH ||
		    settings[i].kind == KIND_LIST)
			free(*(char **)((char *)c + settings[i].offset));
	free(c);
	return NULL;
}

void config_dns_options(const struct config *c, struct resolv_options *ret)
{
	*ret = (struct resolv_options){
		.mode = c->dns_mode,
		.cluster_domain = c->cluster_domain,
		.service = c->dns_service,
		.addresses = c->dns_addresses,
		.link_addresses = c->dns_link_addresses,
		.service_cidrs = c->service_cidrs,
	};
}

static bool parse_bool(const char *v, bool *ret)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
		*ret = true;
		return true;
	}
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
		*ret = false;
		return true;
	}
	return false;
}

/*
 * Set one setting from its text; NULL value means the default. base_dir:
 * what a relative path is relative to (NULL: as given). On a bad value
 * returns -EINVAL and a reason that names the value.
 */
static int setting_set(struct config *c, const struct setting *s, const char *value,
		       const char *base_dir, char **ret_reason)
{
	void *field = (char *)c + s->offset;
	char *copy = NULL;

	*ret_reason = NULL;
	if (value && strlen(value) > VALUE_MAX) {
		*ret_reason = strdup_printf("value longer than %u characters", VALUE_MAX);
		return -EINVAL;
	}
	switch (s->kind) {
	case KIND_BOOL: {
		bool b = s->negated; /* the default: a negated option turns it off */

		if (value && !parse_bool(value, &b)) {
			*ret_reason = strdup_printf("'%s' is not true or false", value);
			return -EINVAL;
		}
		*(bool *)field = b;
		return 0;
	}
	case KIND_MSEC:
		if (!value) {
			*(uint64_t *)field = 5 * USEC_PER_MSEC;
			return 0;
		}
		*ret_reason = check_msec(value);
		if (*ret_reason)
			return -EINVAL;
		*(uint64_t *)field = strtoull(value, NULL, 10) * USEC_PER_MSEC;
		return 0;
	default:
		break;
	}
	if (value && *value) {
		if (s->check) {
			*ret_reason = s->check(value);
			if (*ret_reason)
				return -EINVAL;
		}
		if (s->kind == KIND_PATH && value[0] != '/' && base_dir)
			copy = strdup_printf("%s/%s", base_dir, value);
		else
			copy = strdup(value);
		if (!copy)
			return -ENOMEM;
	}
	free(*(char **)field);
	*(char **)field = copy;
	return 0;
}

/* The setting as text, for comparisons ("" for unset strings). */
static char *setting_text(const struct config *c, const struct setting *s)
{
	const void *field = (const char *)c + s->offset;

	switch (s->kind) {
	case KIND_BOOL:
		return strdup(*(const bool *)field ? "true" : "false");
	case KIND_MSEC:
		return strdup_printf("%" PRIu64, *(const uint64_t *)field);
	default:
		return strdup(*(char *const *)field ? *(char *const *)field : "");
	}
}

char *config_diff(const struct config *a, const struct config *b)
{
	char buf[512] = "";
	size_t len = 0;

	for (size_t i = 0; i < N_SETTINGS; i++) {
		_cleanup_(freep) char *x = setting_text(a, &settings[i]);
		_cleanup_(freep) char *y = setting_text(b, &settings[i]);

		if (!x || !y)
			return NULL;
		if (streq(x, y))
			continue;
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? ", " : "",
					settings[i].key);
		if (len >= sizeof(buf))
			break;
	}
	return len ? strdup(buf) : NULL;
}

/* ---- the file ----------------------------------------------------------- */

struct file {
	const char *path;
	char *dir;
	yaml_document_t doc;
	char **error;
};

static int file_error(struct file *f, const yaml_node_t *n, const char *fmt, ...) _printf_(3, 4);
static int file_error(struct file *f, const yaml_node_t *n, const char *fmt, ...)
{
	_cleanup_(freep) char *msg = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	if (n)
		*f->error = strdup_printf("%s:%zu: %s", f->path, n->start_mark.line + 1, msg);
	else
		*f->error = strdup_printf("%s: %s", f->path, msg);
	return -EINVAL;
}

static bool scalar_is_null(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*v || streq(v, "~") || streq(v, "null") || streq(v, "Null") || streq(v, "NULL");
}

/* A scalar's text, refusing NUL bytes (libyaml keeps them in quoted scalars). */
static int scalar_text(struct file *f, const yaml_node_t *n, const char *key, const char **ret)
{
	const char *v = (const char *)n->data.scalar.value;

	if (strlen(v) != n->data.scalar.length)
		return file_error(f, n, "%s: the value contains a NUL character", key);
	*ret = scalar_is_null(n) ? NULL : v;
	return 0;
}

/* A list value: its items joined with commas (none: NULL). */
static int list_text(struct file *f, const yaml_node_t *seq, const struct setting *s, char **ret)
{
	char buf[VALUE_MAX + 1];
	const char *key = s->key;
	size_t len = 0, n = 0;
	yaml_node_item_t *i;

	for (i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
		yaml_node_t *item = yaml_document_get_node(&f->doc, *i);
		const char *v = NULL;
		int r;

		if (!item || item->type != YAML_SCALAR_NODE)
			return file_error(f, item ? item : seq, "%s: list items must be %s", key,
					  list_items(s) ? list_items(s) : "addresses");
		r = scalar_text(f, item, key, &v);
		if (r < 0)
			return r;
		if (!v || !*v)
			return file_error(f, item, "%s: empty list item", key);
		if (++n > list_max(s))
			return file_error(f, item, "%s: more than %u items", key, list_max(s));
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", v);
		if (len >= sizeof(buf))
			return file_error(f, seq, "%s: list longer than %u characters", key,
					  VALUE_MAX);
	}
	*ret = NULL;
	if (n && !(*ret = strdup(buf)))
		return -ENOMEM;
	return 0;
}

static int file_pair(struct file *f, struct config *c, const yaml_node_t *k, const yaml_node_t *v,
		     unsigned *seen_line)
{
	_cleanup_(freep) char *reason = NULL, *list = NULL;
	const struct setting *s;
	const char *key, *value = NULL;
	int r;

	if (k->type != YAML_SCALAR_NODE)
		return file_error(f, k, "keys must be setting names");
	key = (const char *)k->data.scalar.value;
	s = strlen(key) == k->data.scalar.length ? setting_find(key) : NULL;
	if (!s) {
		if (v->type == YAML_SCALAR_NODE)
			return file_error(f, k, "unknown key '%.64s' (value '%.64s'); see "
					  "kube-annex.yaml(5)",
					  key, (const char *)v->data.scalar.value);
		return file_error(f, k, "unknown key '%.64s'; see kube-annex.yaml(5)", key);
	}
	if (seen_line[s - settings])
		return file_error(f, k, "%s: given twice (first on line %u)", key,
				  seen_line[s - settings]);
	seen_line[s - settings] = (unsigned)k->start_mark.line + 1;

	if (v->type == YAML_SEQUENCE_NODE && s->kind == KIND_LIST) {
		r = list_text(f, v, s, &list);
		if (r < 0)
			return r;
		value = list;
	} else if (v->type != YAML_SCALAR_NODE) {
		return file_error(f, v, "%s: expected %s%s, not a %s", key,
				  s->kind != KIND_LIST ? "a single value" :
				  list_items(s) ? "a list of " : "an address or a list of addresses",
				  s->kind == KIND_LIST && list_items(s) ? list_items(s) : "",
				  v->type == YAML_MAPPING_NODE ? "mapping" : "list");
	} else {
		r = scalar_text(f, v, key, &value);
		if (r < 0)
			return r;
	}
	r = setting_set(c, s, value, f->dir, &reason);
	if (r == -EINVAL)
		return file_error(f, v, "%s: %s", key, reason ? reason : "invalid value");
	return r;
}

int config_parse(struct config *c, const char *path, const char *text, size_t len,
		 char **ret_error)
{
	struct file f = { .path = path, .error = ret_error };
	unsigned seen_line[N_SETTINGS] = {};
	yaml_parser_t parser;
	yaml_node_t *root;
	yaml_node_pair_t *p;
	const char *slash;
	int r = 0;

	*ret_error = NULL;
	if (len > CONFIG_MAX_SIZE) {
		*ret_error = strdup_printf("%s: larger than %u bytes", path, CONFIG_MAX_SIZE);
		return -EFBIG;
	}
	slash = strrchr(path, '/');
	f.dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
	if (slash && !f.dir)
		return -ENOMEM;
	if (!yaml_parser_initialize(&parser)) {
		free(f.dir);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &f.doc)) {
		*ret_error = strdup_printf("%s:%zu: not valid YAML: %s", path,
					   parser.problem_mark.line + 1,
					   parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		free(f.dir);
		return -EINVAL;
	}
	root = yaml_document_get_root_node(&f.doc);
	if (root) {
		/* Only one document: a second one would be silently ignored. */
		yaml_document_t next;

		if (yaml_parser_load(&parser, &next)) {
			if (yaml_document_get_root_node(&next))
				r = file_error(&f, NULL, "more than one YAML document");
			yaml_document_delete(&next);
		}
	}
	yaml_parser_delete(&parser);
	if (r >= 0 && root && root->type == YAML_SCALAR_NODE && scalar_is_null(root))
		root = NULL; /* a file with only "~" or comments */
	if (r >= 0 && root && root->type != YAML_MAPPING_NODE)
		r = file_error(&f, root, "expected settings as 'key: value' lines");
	for (p = root && r >= 0 ? root->data.mapping.pairs.start : NULL;
	     p && p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&f.doc, p->key);
		yaml_node_t *v = yaml_document_get_node(&f.doc, p->value);

		if (!k || !v) {
			r = file_error(&f, root, "malformed mapping");
			break;
		}
		r = file_pair(&f, c, k, v, seen_line);
		if (r < 0)
			break;
	}
	yaml_document_delete(&f.doc);
	free(f.dir);
	return r;
}

static int read_file(const char *path, char **ret, size_t *ret_len)
{
	_cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_(freep) char *buf = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	buf = malloc(CONFIG_MAX_SIZE + 1);
	if (!buf)
		return -ENOMEM;
	/* One byte more than allowed tells "too large" from "exactly the limit". */
	while (len <= CONFIG_MAX_SIZE) {
		n = read(fd, buf + len, CONFIG_MAX_SIZE + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/* ---- the command line --------------------------------------------------- */

enum {
	ARG_CONFIG = 0x100,
	ARG_CHECK_CONFIG,
	ARG_CLEANUP,
	ARG_RELOAD,
	ARG_VERSION,
	ARG_SETTING, /* + index into settings */
};

int config_parse_argv(int argc, char **argv, struct config_args *ret, char **ret_error)
{
	struct option options[N_SETTINGS + 7];
	_cleanup_(config_freep) struct config *scratch = config_new();
	struct config_args a = { .action = CONFIG_ACTION_RUN };
	size_t n = 0;
	int opt;

	*ret_error = NULL;
	if (!scratch)
		return -ENOMEM;
	for (size_t i = 0; i < N_SETTINGS; i++)
		options[n++] = (struct option){
			setting_option(&settings[i]),
			settings[i].kind == KIND_BOOL ? no_argument : required_argument, NULL,
			ARG_SETTING + (int)i,
		};
	options[n++] = (struct option){ "config", required_argument, NULL, ARG_CONFIG };
	options[n++] = (struct option){ "check-config", no_argument, NULL, ARG_CHECK_CONFIG };
	options[n++] = (struct option){ "cleanup", optional_argument, NULL, ARG_CLEANUP };
	options[n++] = (struct option){ "reload", required_argument, NULL, ARG_RELOAD };
	options[n++] = (struct option){ "version", no_argument, NULL, ARG_VERSION };
	options[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	options[n] = (struct option){};

	a.settings = calloc((size_t)argc + 1, sizeof(*a.settings));
	if (!a.settings)
		return -ENOMEM;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
		const struct setting *s = NULL;
		_cleanup_(freep) char *reason = NULL;
		const char *value;
		int r;

		switch (opt) {
		case ARG_CONFIG:
			a.config_path = optarg;
			continue;
		case ARG_CHECK_CONFIG:
			a.action = CONFIG_ACTION_CHECK;
			continue;
		case ARG_CLEANUP:
			if (!optarg)
				a.action = CONFIG_ACTION_CLEANUP;
			else if (streq(optarg, "unless-restarting"))
				a.action = CONFIG_ACTION_STOP_CLEANUP;
			else {
				*ret_error = strdup_printf("--cleanup=%s: expected --cleanup or "
							   "--cleanup=unless-restarting",
							   optarg);
				goto fail;
			}
			continue;
		case ARG_RELOAD:
			a.action = CONFIG_ACTION_RELOAD;
			a.reload_pid = optarg;
			continue;
		case ARG_VERSION:
			a.action = CONFIG_ACTION_VERSION;
			continue;
		case 'h':
			a.action = CONFIG_ACTION_HELP;
			continue;
		case 'v':
			s = setting_find("verbose");
			break;
		default:
			if (opt < ARG_SETTING || opt >= ARG_SETTING + (int)N_SETTINGS)
				goto fail; /* getopt said why */
			s = &settings[opt - ARG_SETTING];
			break;
		}
		value = s->kind == KIND_BOOL ? (s->negated ? "false" : "true") : optarg;
		r = setting_set(scratch, s, value, NULL, &reason);
		if (r == -EINVAL) {
			*ret_error = strdup_printf("--%s: %s", setting_option(s),
						   reason ? reason : "invalid value");
			goto fail;
		}
		if (r < 0) {
			free(a.settings);
			return r;
		}
		a.settings[a.n_settings++] = (struct config_arg){ (unsigned)(s - settings), value };
	}
	if (optind < argc) {
		*ret_error = strdup_printf("unexpected argument '%s' (see --help)", argv[optind]);
		goto fail;
	}
	*ret = a;
	return 0;
fail:
	free(a.settings);
	return -EINVAL;
}

void config_args_done(struct config_args *a)
{
	a->settings = mfree(a->settings);
	a->n_settings = 0;
}

int config_load(const struct config_args *a, struct config **ret, char **ret_path,
		char **ret_error)
{
	_cleanup_(config_freep) struct config *c = config_new();
	_cleanup_(freep) char *text = NULL, *path = NULL;
	size_t len = 0;
	int r;

	*ret_error = NULL;
	if (!c)
		return -ENOMEM;
	path = strdup(a->config_path ? a->config_path : CONFIG_DEFAULT_PATH);
	if (!path)
		return -ENOMEM;
	r = read_file(path, &text, &len);
	if (r == -ENOENT && !a->config_path) {
		path = mfree(path);
	} else if (r < 0) {
		*ret_error = strdup_printf("%s: %s", path, strerror(-r));
		return r;
	} else {
		r = config_parse(c, path, text, len, ret_error);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < a->n_settings; i++) {
		_cleanup_(freep) char *reason = NULL;
		const struct setting *s = &settings[a->settings[i].setting];

		r = setting_set(c, s, a->settings[i].value, NULL, &reason);
		if (r < 0) {
			*ret_error = strdup_printf("--%s: %s", setting_option(s),
						   reason ? reason : strerror(-r));
			return r;
		}
	}
	*ret = TAKE_PTR(c);
	if (ret_path)
		*ret_path = TAKE_PTR(path);
	return 0;
}

char *config_kubeconfig_path(const struct config *c, char **ret_note)
{
	const char *env = secure_getenv("KUBECONFIG");

	*ret_note = NULL;
	if (c->kubeconfig)
		return strdup(c->kubeconfig);
	if (env && *env) {
		size_t n = strcspn(env, ":");

		if (env[n])
			*ret_note = strdup_printf("KUBECONFIG lists several files; using the "
						  "first, %.*s",
						  (int)n, env);
		return strndup(env, n);
	}
	return strdup(CONFIG_DEFAULT_KUBECONFIG);
}

/* ---- help --------------------------------------------------------------- */

static void help_line(FILE *f, const char *left, const char *text)
{
	const char *nl;

	if (strlen(left) >= 20)
		fprintf(f, "  %s\n%22s", left, "");
	else
		fprintf(f, "  %-20s", left);
	for (;;) {
		nl = strchr(text, '\n');
		fprintf(f, "%.*s\n", nl ? (int)(nl - text) : (int)strlen(text), text);
		if (!nl)
			break;
		text = nl + 1;
		fprintf(f, "%22s", "");
	}
}

void config_help(FILE *f)
{
	char left[64];

	fprintf(f, "Usage: kube-annex [OPTIONS]\n\n"
		   "Mirror a Kubernetes cluster's Service networking onto this host:\n"
		   "ClusterIP:port connections are DNATed to the Services' endpoints.\n\n"
		   "Settings (each is also a key of the configuration file, e.g. \"zone: a\"):\n");
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];

		if (s->short_option)
			snprintf(left, sizeof(left), "-%c, --%s", s->short_option, setting_option(s));
		else
			snprintf(left, sizeof(left), "--%s%s%s", setting_option(s), s->arg ? " " : "",
				 s->arg ? s->arg : "");
		help_line(f, left, s->help);
	}
	fprintf(f, "\nOther options:\n");
	help_line(f, "--config FILE", "configuration file (default " CONFIG_DEFAULT_PATH
		  ",\nif it exists); command-line settings override it");
	help_line(f, "--check-config", "check the configuration and the kubeconfig, then exit\n"
		  "(0: valid, 2: not)");
	help_line(f, "--cleanup", "remove everything kube-annex installed, then exit");
	help_line(f, "--cleanup=unless-restarting",
		  "the same, unless systemd is restarting the unit\n(for ExecStopPost=)");
	help_line(f, "--reload PID", "make the daemon PID reload and wait until it has\n"
		  "started to (for ExecReload=; plain SIGHUP works too)");
	help_line(f, "--version", "print the version");
	help_line(f, "-h, --help", "this text");
}
