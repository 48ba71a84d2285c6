/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * kubeconfig loading: the file is parsed into a libyaml document, then the
 * few keys we use are looked up in it. No I/O beyond reading the file.
 *
 * Semantics follow kubectl (client-go clientcmd): relative paths resolve
 * against the kubeconfig's directory, "-data" fields are base64 of the
 * PEM, a file and its "-data" twin may not both be set, neither may two
 * authentication methods (token and username/password). What kubectl
 * would reject, we reject; credential plugins we cannot run are refused by
 * name rather than ignored.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <yaml.h>

#include "kube/internal.h"

#define KUBECONFIG_MAX_SIZE (1u << 20)
#define TOKEN_MAX_SIZE (64u << 10)
#define SERVER_MAX_LEN 4096u

/* -errno after a failed call, never 0. */
static int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* ---- files ---------------------------------------------------------------- */

/* The whole of a regular file of at most max bytes, NUL-terminated. */
static int read_file_bounded(const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_(closep) int fd = -EBADF;
	_cleanup_(freep) char *buf = NULL;
	size_t len = 0;
	struct stat st;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
		return -EFBIG;
	buf = malloc(max + 2);
	if (!buf)
		return -ENOMEM;
	/* Read one byte past max, so that a file that grew is caught too. */
	while (len <= max) {
		n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max)
		return -EFBIG;
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

static bool has_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int kube_token_read(const char *path, char **ret_token)
{
	_cleanup_(freep) char *buf = NULL;
	size_t len, start = 0;
	char *token;
	int r;

	r = read_file_bounded(path, TOKEN_MAX_SIZE, &buf, &len);
	if (r < 0)
		return r;
	if (strlen(buf) != len)
		return -EINVAL; /* NUL bytes */
	while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
		buf[--len] = '\0';
	while (start < len && strchr(" \t\r\n", buf[start]))
		start++;
	/* It goes into an HTTP header: nothing that could end the line. */
	if (start == len || has_control_chars(buf + start))
		return -EINVAL;
	token = strdup(buf + start);
	if (!token)
		return -ENOMEM;
	*ret_token = token;
	return 0;
}

/* "dir/rel" with "." and ".." resolved lexically, as Go's filepath.Join. dir
 * is absolute. */
static char *path_join(const char *dir, const char *rel)
{
	_cleanup_(freep) char *joined = strdup_printf("%s/%s", dir, rel);
	char *out, *seg, *save = NULL;
	size_t len = 0;

	if (!joined)
		return NULL;
	out = malloc(strlen(joined) + 2);
	if (!out)
		return NULL;
	for (seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (streq(seg, "."))
			continue;
		if (streq(seg, "..")) {
			while (len > 0 && out[--len] != '/')
				;
			continue;
		}
		out[len++] = '/';
		memcpy(out + len, seg, strlen(seg));
		len += strlen(seg);
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* The absolute directory holding the kubeconfig. */
static int config_dir(const char *path, char **ret)
{
	_cleanup_(freep) char *cwd = NULL;
	char *abs, *slash;

	if (path[0] != '/') {
		cwd = getcwd(NULL, 0);
		if (!cwd)
			return negative_errno();
	}
	abs = path_join(cwd ?: "/", path);
	if (!abs)
		return -ENOMEM;
	/* path_join() output starts with '/'; "/kubeconfig" lives in "/". */
	slash = strrchr(abs, '/');
	slash[slash == abs ? 1 : 0] = '\0';
	*ret = abs;
	return 0;
}

/* ---- base64 ---------------------------------------------------------------- */

static int base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* One 4-character quantum; '=' only in the last one (last == true). */
static int base64_quantum(const char *q, bool last, char *out)
{
	int v[4], i, n = 4;

	if (last && q[3] == '=')
		n = q[2] == '=' ? 2 : 3;
	for (i = 0; i < 4; i++) {
		v[i] = i < n ? base64_value(q[i]) : 0;
		if (v[i] < 0)
			return -EINVAL;
	}
	out[0] = (char)(v[0] << 2 | v[1] >> 4);
	out[1] = (char)((v[1] & 0xf) << 4 | v[2] >> 2);
	out[2] = (char)((v[2] & 0x3) << 6 | v[3]);
	return n - 1;
}

/*
 * Base64 as Go's encoding/base64.StdEncoding decodes it (which is what
 * kubectl applies to "-data" fields): standard alphabet, padding required,
 * '\r' and '\n' ignored, nothing else. NUL-terminated for convenience.
 */
static int base64_decode(const char *s, char **ret, size_t *ret_len)
{
	size_t len = 0, seen = 0, n = 0, o = 0;
	char quad[4], *out;
	const char *p;
	int r;

	for (p = s; *p; p++)
		len += *p != '\r' && *p != '\n';
	if (len % 4 != 0)
		return -EINVAL;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	for (p = s; *p; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		quad[n++] = *p;
		if (n < 4)
			continue;
		seen += 4;
		n = 0;
		r = base64_quantum(quad, seen == len, out + o);
		if (r < 0) {
			free(out);
			return r;
		}
		o += (size_t)r;
	}
	out[o] = '\0';
	*ret = out;
	*ret_len = o;
	return 0;
}

/* ---- the document ---------------------------------------------------------- */

struct kc {
	const char *path; /* as given: messages name it */
	char *dir;
	yaml_document_t doc;
	bool have_doc;
	char *error;
};

static void kc_done(struct kc *kc)
{
	free(kc->dir);
	if (kc->have_doc)
		yaml_document_delete(&kc->doc);
	free(kc->error);
}

/* "<file>: <where>: <key>: <message>"; where and key may be NULL. The first
 * message sticks. kc_error() evaluates to r (a macro, so that the static
 * analyzer sees the value: it does not follow variadic calls). */
_printf_(4, 5) static void kc_error_set(struct kc *kc, const char *where, const char *key,
					const char *fmt, ...)
{
	_cleanup_(freep) char *msg = NULL;
	va_list ap;

	if (kc->error)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	kc->error = strdup_printf("%s: %s%s%s%s%s", kc->path, where ?: "", where ? ": " : "",
				  key ?: "", key ? ": " : "", msg ?: "out of memory");
}

#define kc_error(kc, r, where, key, ...) (kc_error_set((kc), (where), (key), __VA_ARGS__), (r))

static int kc_parse(struct kc *kc, const char *buf, size_t len)
{
	yaml_parser_t parser;
	int r = 0;

	if (!yaml_parser_initialize(&parser))
		return kc_error(kc, -ENOMEM, NULL, NULL, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (yaml_parser_load(&parser, &kc->doc))
		kc->have_doc = true;
	else if (parser.error == YAML_MEMORY_ERROR)
		r = kc_error(kc, -ENOMEM, NULL, NULL, "out of memory");
	else
		r = kc_error(kc, -EINVAL, NULL, NULL, "not YAML: %s at line %zu column %zu",
			     parser.problem ?: "parse error", parser.problem_mark.line + 1,
			     parser.problem_mark.column + 1);
	yaml_parser_delete(&parser);
	return r;
}

/* The value of key in a mapping node, or NULL. */
static yaml_node_t *kc_get(struct kc *kc, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;
	yaml_node_t *k;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		k = yaml_document_get_node(&kc->doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE &&
		    k->data.scalar.length == strlen(key) &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return yaml_document_get_node(&kc->doc, p->value);
	}
	return NULL;
}

static bool node_is_null(const yaml_node_t *n)
{
	const char *v;

	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return streq(v, "") || streq(v, "~") || streq(v, "null") || streq(v, "Null") ||
	       streq(v, "NULL");
}

/* A string value: 1 set, 0 unset (absent, null or empty), <0 error. */
static int kc_string(struct kc *kc, yaml_node_t *map, const char *where, const char *key,
		     const char **ret)
{
	yaml_node_t *n = kc_get(kc, map, key);
	const char *v;

	*ret = NULL;
	if (node_is_null(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kc_error(kc, -EINVAL, where, key, "not a string");
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length)
		return kc_error(kc, -EINVAL, where, key, "contains a NUL byte");
	if (!*v)
		return 0;
	*ret = v;
	return 1;
}

static int kc_strdup(struct kc *kc, yaml_node_t *map, const char *where, const char *key,
		     char **ret)
{
	const char *v;
	int r;

	r = kc_string(kc, map, where, key, &v);
	if (r <= 0)
		return r;
	*ret = strdup(v);
	return *ret ? 1 : kc_error(kc, -ENOMEM, where, key, "out of memory");
}

/* YAML 1.1 booleans, as kubectl's YAML parser reads them. */
static int kc_bool(struct kc *kc, yaml_node_t *map, const char *where, const char *key, bool *ret)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES",
					   "on", "On", "ON", "y", "Y" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO",
					  "off", "Off", "OFF", "n", "N" };
	char q[KUBE_QUOTE_MAX + 4];
	yaml_node_t *n = kc_get(kc, map, key);
	const char *v;
	size_t i;

	if (node_is_null(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kc_error(kc, -EINVAL, where, key, "not a boolean");
	v = (const char *)n->data.scalar.value;
	for (i = 0; n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && i < ARRAY_SIZE(yes); i++) {
		if (streq(v, yes[i]) || streq(v, no[i])) {
			*ret = streq(v, yes[i]);
			return 1;
		}
	}
	return kc_error(kc, -EINVAL, where, key, "\"%s\" is not a boolean",
			kube_quote(v, q, sizeof(q)));
}

/* A mapping value: 1 set, 0 unset, <0 error. */
static int kc_mapping(struct kc *kc, yaml_node_t *map, const char *where, const char *key,
		      yaml_node_t **ret)
{
	yaml_node_t *n = kc_get(kc, map, key);

	*ret = NULL;
	if (node_is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return kc_error(kc, -EINVAL, where, key, "not a mapping");
	*ret = n;
	return 1;
}

/* A path, made absolute against the kubeconfig's directory. */
static int kc_path(struct kc *kc, yaml_node_t *map, const char *where, const char *key,
		   char **ret)
{
	const char *v;
	int r;

	r = kc_string(kc, map, where, key, &v);
	if (r <= 0)
		return r;
	*ret = v[0] == '/' ? strdup(v) : path_join(kc->dir, v);
	return *ret ? 1 : kc_error(kc, -ENOMEM, where, key, "out of memory");
}

/*
 * The entry of the top-level list (clusters, contexts, users) called name:
 * its inner mapping (cluster, context, user) into *ret, its description
 * ('clusters[2] "prod"') into where. A name used twice is an error, as in
 * kubectl.
 */
static int kc_find(struct kc *kc, const char *list, const char *inner, const char *name,
		   const char *used_by, yaml_node_t **ret, char *where, size_t where_size)
{
	char q[KUBE_QUOTE_MAX + 4], here[48];
	yaml_node_t *seq = kc_get(kc, yaml_document_get_root_node(&kc->doc), list), *item;
	yaml_node_t *found = NULL;
	yaml_node_item_t *i;
	const char *n;
	int r;

	if (node_is_null(seq))
		seq = NULL;
	else if (seq->type != YAML_SEQUENCE_NODE)
		return kc_error(kc, -EINVAL, NULL, list, "not a list");
	for (i = seq ? seq->data.sequence.items.start : NULL; i && i < seq->data.sequence.items.top;
	     i++) {
		item = yaml_document_get_node(&kc->doc, *i);
		snprintf(here, sizeof(here), "%s[%td]", list, i - seq->data.sequence.items.start);
		if (!item || item->type != YAML_MAPPING_NODE)
			return kc_error(kc, -EINVAL, here, NULL, "not a mapping");
		r = kc_string(kc, item, here, "name", &n);
		if (r < 0)
			return r;
		if (r == 0 || !streq(n, name))
			continue;
		if (found)
			return kc_error(kc, -EINVAL, NULL, list,
					"name \"%s\" is used twice (%s and %s)",
					kube_quote(name, q, sizeof(q)), where, here);
		found = item;
		snprintf(where, where_size, "%s \"%s\"", here, kube_quote(name, q, sizeof(q)));
	}
	if (!found)
		return kc_error(kc, -EINVAL, NULL, list, "no %s named \"%s\"%s%s%s", inner,
				kube_quote(name, q, sizeof(q)), used_by ? " (used by " : "",
				used_by ?: "", used_by ? ")" : "");
	r = kc_mapping(kc, found, where, inner, ret);
	if (r == 0)
		return kc_error(kc, -EINVAL, where, inner, "not set");
	return r < 0 ? r : 0;
}

/* ---- the config ------------------------------------------------------------ */

/* <key> (a file) or <key>-data (base64 of the contents), not both. */
static int kc_file_or_data(struct kc *kc, yaml_node_t *map, const char *where, const char *key,
			   char **ret_file, char **ret_data, size_t *ret_len)
{
	char data_key[64];
	const char *data;
	int r;

	snprintf(data_key, sizeof(data_key), "%s-data", key);
	r = kc_string(kc, map, where, data_key, &data);
	if (r < 0)
		return r;
	if (r > 0 && !node_is_null(kc_get(kc, map, key)))
		return kc_error(kc, -EINVAL, where, NULL, "%s and %s are both set; use one",
				key, data_key);
	if (r == 0)
		return kc_path(kc, map, where, key, ret_file);
	r = base64_decode(data, ret_data, ret_len);
	if (r == -ENOMEM)
		return kc_error(kc, r, where, data_key, "out of memory");
	if (r < 0)
		return kc_error(kc, r, where, data_key, "invalid base64");
	return 1;
}

/* http:// is allowed, as kubectl allows it; nothing else. Trailing slashes
 * go: request paths are appended to the server. */
static int kc_server(struct kc *kc, yaml_node_t *cluster, const char *where,
		     struct kube_config *c)
{
	char q[KUBE_QUOTE_MAX + 4];
	size_t len, scheme;
	const char *v;
	int r;

	r = kc_string(kc, cluster, where, "server", &v);
	if (r < 0)
		return r;
	if (r == 0)
		return kc_error(kc, -EINVAL, where, "server", "not set");
	len = strlen(v);
	while (len > 0 && v[len - 1] == '/')
		len--;
	scheme = strncasecmp(v, "https://", 8) == 0 ? 8 : strncasecmp(v, "http://", 7) == 0 ? 7 : 0;
	if (scheme == 0 || len <= scheme || len > SERVER_MAX_LEN || strpbrk(v, " \t") ||
	    has_control_chars(v))
		return kc_error(kc, -EINVAL, where, "server",
				"\"%s\" is not an https:// or http:// URL",
				kube_quote(v, q, sizeof(q)));
	c->server = strndup(v, len);
	return c->server ? 0 : kc_error(kc, -ENOMEM, where, "server", "out of memory");
}

static int kc_cluster(struct kc *kc, yaml_node_t *cluster, const char *where,
		      struct kube_config *c)
{
	int r;

	r = kc_server(kc, cluster, where, c);
	if (r >= 0)
		r = kc_file_or_data(kc, cluster, where, "certificate-authority", &c->ca_file,
				    &c->ca_data, &c->ca_data_len);
	if (r >= 0)
		r = kc_bool(kc, cluster, where, "insecure-skip-tls-verify",
			    &c->insecure_skip_tls_verify);
	if (r >= 0)
		r = kc_strdup(kc, cluster, where, "tls-server-name", &c->tls_server_name);
	if (r < 0)
		return r;
	if (c->insecure_skip_tls_verify && (c->ca_file || c->ca_data))
		return kc_error(kc, -EINVAL, where, NULL,
				"insecure-skip-tls-verify and a certificate-authority are both set; use one");
	return 0;
}

static int kc_user_plugins(struct kc *kc, yaml_node_t *user, const char *where)
{
	static const char *const plugins[] = { "exec", "auth-provider" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(plugins); i++)
		if (!node_is_null(kc_get(kc, user, plugins[i])))
			return kc_error(kc, -EOPNOTSUPP, where, plugins[i],
					"credential plugins are not supported; use a token, tokenFile or client certificate");
	return 0;
}

static int kc_user_check(struct kc *kc, const char *where, struct kube_config *c)
{
	bool cert = c->cert_file || c->cert_data, key = c->key_file || c->key_data;

	if (cert != key)
		return kc_error(kc, -EINVAL, where, cert ? "client-key" : "client-certificate",
				"not set, but %s is", cert ? "client-certificate" : "client-key");
	if (c->token && has_control_chars(c->token))
		return kc_error(kc, -EINVAL, where, "token", "contains control characters");
	if ((c->token || c->token_file) && (c->username || c->password))
		return kc_error(kc, -EINVAL, where, NULL,
				"more than one authentication method (token and username/password)");
	if (!cert && !c->token && !c->token_file && !c->username)
		return kc_error(kc, -EINVAL, where, "user",
				"no credentials (token, tokenFile, client-certificate or username)");
	return 0;
}

static int kc_user(struct kc *kc, yaml_node_t *user, const char *where, struct kube_config *c)
{
	int r;

	r = kc_user_plugins(kc, user, where);
	if (r >= 0)
		r = kc_file_or_data(kc, user, where, "client-certificate", &c->cert_file,
				    &c->cert_data, &c->cert_data_len);
	if (r >= 0)
		r = kc_file_or_data(kc, user, where, "client-key", &c->key_file, &c->key_data,
				    &c->key_data_len);
	if (r >= 0)
		r = kc_strdup(kc, user, where, "token", &c->token);
	if (r >= 0)
		r = kc_path(kc, user, where, "tokenFile", &c->token_file);
	if (r >= 0)
		r = kc_strdup(kc, user, where, "username", &c->username);
	if (r >= 0)
		r = kc_strdup(kc, user, where, "password", &c->password);
	if (r < 0)
		return r;
	return kc_user_check(kc, where, c);
}

static int kc_load(struct kc *kc, const char *context, struct kube_config *c)
{
	char ctx_where[DECODE_PATH_MAX], where[DECODE_PATH_MAX];
	yaml_node_t *root, *ctx, *n;
	int r;

	root = yaml_document_get_root_node(&kc->doc);
	if (!root)
		return kc_error(kc, -EINVAL, NULL, NULL, "empty");
	if (root->type != YAML_MAPPING_NODE)
		return kc_error(kc, -EINVAL, NULL, NULL, "not a mapping");
	if (context) {
		c->context = strdup(context);
		if (!c->context)
			return kc_error(kc, -ENOMEM, NULL, NULL, "out of memory");
	} else {
		r = kc_strdup(kc, root, NULL, "current-context", &c->context);
		if (r == 0)
			return kc_error(kc, -EINVAL, NULL, "current-context",
					"not set, and no context was given");
		if (r < 0)
			return r;
	}

	r = kc_find(kc, "contexts", "context", c->context, NULL, &ctx, ctx_where,
		    sizeof(ctx_where));
	if (r >= 0 && (r = kc_strdup(kc, ctx, ctx_where, "cluster", &c->cluster)) == 0)
		r = kc_error(kc, -EINVAL, ctx_where, "cluster", "not set");
	if (r >= 0 && (r = kc_strdup(kc, ctx, ctx_where, "user", &c->user)) == 0)
		r = kc_error(kc, -EINVAL, ctx_where, "user", "not set");
	if (r < 0)
		return r;

	r = kc_find(kc, "clusters", "cluster", c->cluster, ctx_where, &n, where, sizeof(where));
	if (r >= 0)
		r = kc_cluster(kc, n, where, c);
	if (r >= 0)
		r = kc_find(kc, "users", "user", c->user, ctx_where, &n, where, sizeof(where));
	if (r >= 0)
		r = kc_user(kc, n, where, c);
	return r < 0 ? r : 0;
}

/* Everything but reading the file: the contents of path are in buf. */
static int kube_config_parse(const char *path, const char *buf, size_t len,
			     const char *context, struct kube_config **ret, char **ret_error)
{
	_cleanup_(kc_done) struct kc kc = { .path = path };
	struct kube_config *c;
	int r;

	/* No _cleanup_ on c: clang 14's analyzer does not see cleanup
	 * attributes, and there is a single exit anyway. */
	c = calloc(1, sizeof(*c));
	if (!c || !(c->path = strdup(path)))
		r = kc_error(&kc, -ENOMEM, NULL, NULL, "out of memory");
	else if ((r = config_dir(path, &kc.dir)) < 0)
		r = kc_error(&kc, r, NULL, NULL, "cannot resolve directory: %s", strerror(-r));
	if (r >= 0)
		r = kc_parse(&kc, buf, len);
	if (r >= 0)
		r = kc_load(&kc, context, c);
	if (ret_error)
		*ret_error = r < 0 ? TAKE_PTR(kc.error) : NULL;
	if (r < 0)
		kube_config_free(c);
	else
		*ret = c;
	return r < 0 ? r : 0;
}

int kube_config_load(const char *path, const char *context, struct kube_config **ret,
		     char **ret_error)
{
	_cleanup_(freep) char *buf = NULL;
	size_t len = 0;
	int r;

	r = read_file_bounded(path, KUBECONFIG_MAX_SIZE, &buf, &len);
	if (r >= 0)
		return kube_config_parse(path, buf, len, context, ret, ret_error);
	if (ret_error) {
		if (r == -EFBIG)
			*ret_error = strdup_printf("%s: larger than %u bytes", path,
						   KUBECONFIG_MAX_SIZE);
		else
			*ret_error = strdup_printf("%s: cannot read: %s", path, strerror(-r));
	}
	return r;
}

static void free_secret(char *s, size_t len)
{
	if (s)
		explicit_bzero(s, len);
	free(s);
}

struct kube_config *kube_config_free(struct kube_config *c)
{
	if (!c)
		return NULL;
	free(c->path);
	free(c->context);
	free(c->cluster);
	free(c->user);
	free(c->server);
	free(c->tls_server_name);
	free(c->ca_file);
	free(c->ca_data);
	free(c->cert_file);
	free(c->cert_data);
	free(c->key_file);
	free_secret(c->key_data, c->key_data_len);
	free_secret(c->token, c->token ? strlen(c->token) : 0);
	free(c->token_file);
	free(c->username);
	free_secret(c->password, c->password ? strlen(c->password) : 0);
	free(c);
	return NULL;
}
