/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Typed access to API objects (cJSON), shared by the Service, EndpointSlice
 * and Endpoints decoders. Pure.
 */
#include <stdarg.h>
#include <sys/socket.h>

#include "kube/internal.h"

const char *kube_quote(const char *s, char *buf, size_t size)
{
	size_t i, n;

	if (size == 0)
		return "";
	n = strnlen(s, KUBE_QUOTE_MAX + 1);
	if (n > KUBE_QUOTE_MAX)
		n = KUBE_QUOTE_MAX;
	if (n > size - 1)
		n = size - 1;
	for (i = 0; i < n; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[n] = '\0';
	if (s[n] && size > n + 3)
		strcpy(buf + n, "...");
	return buf;
}

bool kube_name_valid(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		if (i >= max)
			return false;
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\'' || s[i] == '\\')
			return false;
	}
	return i > 0;
}

void decode_error_set(char **error, const char *path, const char *key, const char *fmt, ...)
{
	_cleanup_(freep) char *msg = NULL;
	bool has_path = path && *path, has_key = key && *key;
	va_list ap;
	int r;

	if (!error || *error)
		return;
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		msg = NULL;
		return;
	}
	*error = strdup_printf("%s%s%s%s%s", has_path ? path : "", has_path && has_key ? "." : "",
			       has_key ? key : "", has_path || has_key ? ": " : "", msg);
}

int decode_finish(int r, char **error, char **ret_error)
{
	if (r >= 0) {
		free(*error);
		*error = NULL;
	} else if (!*error) {
		*error = strdup(strerror(-r));
	}
	if (ret_error)
		*ret_error = TAKE_PTR(*error);
	free(*error);
	*error = NULL;
	return r < 0 ? r : 0;
}

const char *decode_join(char *buf, size_t size, const char *path, const char *key)
{
	snprintf(buf, size, "%s%s%s", path, *path ? "." : "", key);
	return buf;
}

const char *decode_path(char *buf, size_t size, const char *path, const char *key, size_t i)
{
	snprintf(buf, size, "%s%s%s[%zu]", path, *path ? "." : "", key, i);
	return buf;
}

const cJSON *json_member(const cJSON *obj, const char *key)
{
	const cJSON *j;

	if (!cJSON_IsObject(obj))
		return NULL;
	j = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNull(j) ? NULL : j;
}

int json_object(const cJSON *obj, const char *path, const char *key, const cJSON **ret,
		char **error)
{
	const cJSON *j = json_member(obj, key);

	*ret = NULL;
	if (!j)
		return 0;
	if (!cJSON_IsObject(j))
		return decode_error(error, path, key, "not an object");
	*ret = j;
	return 1;
}

int json_array(const cJSON *obj, const char *path, const char *key, size_t max,
	       const cJSON **ret, size_t *ret_n, char **error)
{
	const cJSON *j = json_member(obj, key), *e;
	size_t n = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!j)
		return 0;
	if (!cJSON_IsArray(j))
		return decode_error(error, path, key, "not an array");
	cJSON_ArrayForEach(e, j)
		if (++n > max)
			return decode_error(error, path, key, "more than %zu entries", max);
	*ret = j;
	*ret_n = n;
	return 1;
}

int json_string(const cJSON *obj, const char *path, const char *key, const char **ret,
		char **error)
{
	const cJSON *j = json_member(obj, key);

	if (!j)
		return 0;
	if (!cJSON_IsString(j) || !j->valuestring)
		return decode_error(error, path, key, "not a string");
	*ret = j->valuestring;
	return 1;
}

int json_name(const cJSON *obj, const char *path, const char *key, bool allow_empty,
	      char **ret, char **error)
{
	char q[KUBE_QUOTE_MAX + 4];
	const char *s = NULL;
	char *copy;
	int r;

	r = json_string(obj, path, key, &s, error);
	if (r <= 0)
		return r;
	if (!*s && !allow_empty)
		return 0;
	if (*s && !kube_name_valid(s, KUBE_MAX_NAME_LEN))
		return decode_error(error, path, key, "\"%s\" is not a valid name",
				    kube_quote(s, q, sizeof(q)));
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	free(*ret);
	*ret = copy;
	return 1;
}

int json_bool(const cJSON *obj, const char *path, const char *key, bool *ret, char **error)
{
	const cJSON *j = json_member(obj, key);

	if (!j)
		return 0;
	if (!cJSON_IsBool(j))
		return decode_error(error, path, key, "not a boolean");
	*ret = cJSON_IsTrue(j);
	return 1;
}

int json_uint(const cJSON *obj, const char *path, const char *key, uint64_t min, uint64_t max,
	      uint64_t *ret, char **error)
{
	const cJSON *j = json_member(obj, key);
	double d;

	if (!j)
		return 0;
	if (!cJSON_IsNumber(j))
		return decode_error(error, path, key, "not a number");
	d = j->valuedouble;
	/* Written so that NaN fails too. */
	if (!(d >= (double)min && d <= (double)max)) {
		if (d > -1e15 && d < 1e15)
			return decode_error(error, path, key, "%.0f is out of range", d);
		return decode_error(error, path, key, "%g is out of range", d);
	}
	if (d != (double)(uint64_t)d)
		return decode_error(error, path, key, "%g is not an integer", d);
	*ret = (uint64_t)d;
	return 1;
}

int json_protocol(const cJSON *obj, const char *path, const char *key, int *ret, char **error)
{
	char q[KUBE_QUOTE_MAX + 4];
	const char *s = NULL;
	int r;

	*ret = IPPROTO_TCP;
	r = json_string(obj, path, key, &s, error);
	if (r <= 0)
		return r;
	r = kube_protocol_parse(s);
	if (r < 0)
		return decode_error(error, path, key, "\"%s\" is not TCP, UDP or SCTP",
				    kube_quote(s, q, sizeof(q)));
	*ret = r;
	return 1;
}

int decode_port_identity(const cJSON *obj, const char *path, char **ret_name, int *ret_protocol,
			 char **error)
{
	int r;

	if (!cJSON_IsObject(obj))
		return decode_error(error, path, NULL, "not an object");
	r = json_name(obj, path, "name", true, ret_name, error);
	if (r < 0)
		return r;
	if (!*ret_name && !(*ret_name = strdup("")))
		return -ENOMEM;
	return json_protocol(obj, path, "protocol", ret_protocol, error);
}

/* names: the first member of an array of structs `stride` bytes apart. A
 * quadratic scan, bounded by KUBE_MAX_PORTS, and only for ports decoded. */
int decode_unique_port_name(const char *path, char *const *names, size_t stride, size_t i,
			    char **error)
{
	char q[KUBE_QUOTE_MAX + 4];
	const char *name = *(char *const *)((const char *)names + i * stride);

	for (size_t k = 0; k < i; k++) {
		if (!streq(*(char *const *)((const char *)names + k * stride), name))
			continue;
		if (!*name)
			return decode_error(error, path, "name", "not set, nor is that of ports[%zu] "
					    "(more than one port needs names)", k);
		return decode_error(error, path, "name", "\"%s\" is also the name of ports[%zu]",
				    kube_quote(name, q, sizeof(q)), k);
	}
	return 0;
}

int decode_ip(const char *s, int family, const char *path, const char *key, struct kube_ip *ret,
	      char **error)
{
	const char *what = family == AF_INET ? "IPv4" : family == AF_INET6 ? "IPv6" : "IP";
	char q[KUBE_QUOTE_MAX + 4];
	struct kube_ip ip;

	if (kube_ip_parse(s, &ip) < 0 || (family && ip.family != family))
		return decode_error(error, path, key, "\"%s\" is not an %s address",
				    kube_quote(s, q, sizeof(q)), what);
	*ret = ip;
	return 0;
}

int decode_meta(const cJSON *obj, char **ret_namespace, char **ret_name, char **error)
{
	const cJSON *meta;
	int r;

	if (!cJSON_IsObject(obj))
		return decode_error(error, NULL, NULL, "not a JSON object");
	r = json_object(obj, "", "metadata", &meta, error);
	if (r < 0)
		return r;
	if (r == 0)
		return decode_error(error, NULL, "metadata", "not set");
	if (ret_namespace) {
		r = json_name(meta, "metadata", "namespace", false, ret_namespace, error);
		if (r < 0)
			return r;
		if (r == 0)
			return decode_error(error, "metadata", "namespace", "not set");
	}
	r = json_name(meta, "metadata", "name", false, ret_name, error);
	if (r < 0)
		return r;
	if (r == 0)
		return decode_error(error, "metadata", "name", "not set");
	return 0;
}

const char *kube_meta_string(const struct cJSON *obj, const char *field)
{
	const cJSON *j = json_member(json_member(obj, "metadata"), field);

	return cJSON_IsString(j) ? j->valuestring : NULL;
}

const char *decode_meta_map_string(const cJSON *obj, const char *map, const char *key)
{
	const cJSON *j = json_member(json_member(json_member(obj, "metadata"), map), key);

	return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* Exactly n decimal digits. */
static int parse_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (; n > 0; n--, (*p)++) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (**p - '0');
	}
	*ret = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int parse_rfc3339_offset(const char *p, int64_t *ret_sec)
{
	int sign, hh, mm;

	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		*ret_sec = 0;
		return 0;
	}
	if (*p != '+' && *p != '-')
		return -EINVAL;
	sign = *p++ == '-' ? -1 : 1;
	if (parse_digits(&p, 2, &hh) < 0 || *p++ != ':' || parse_digits(&p, 2, &mm) < 0 ||
	    *p != '\0' || hh > 23 || mm > 59)
		return -EINVAL;
	*ret_sec = sign * (hh * 3600 + mm * 60);
	return 0;
}

static bool skip_char(const char **p, const char *set)
{
	if (**p == '\0' || !strchr(set, **p))
		return false;
	(*p)++;
	return true;
}

/* ".123456789": any number of digits, rounded down to usec. */
static int parse_fraction(const char **p, int *ret_usec)
{
	int usec = 0, digits = 0;

	if (!skip_char(p, "."))
		return 0;
	for (; **p >= '0' && **p <= '9'; (*p)++, digits++)
		if (digits < 6)
			usec = usec * 10 + (**p - '0');
	if (digits == 0)
		return -EINVAL;
	for (; digits < 6; digits++)
		usec *= 10;
	*ret_usec = usec;
	return 0;
}

int parse_rfc3339(const char *s, uint64_t *ret)
{
	int y, mo, d, h, mi, sec, usec = 0;
	const char *p = s;
	int64_t t, offset;

	if (parse_digits(&p, 4, &y) < 0 || !skip_char(&p, "-") || parse_digits(&p, 2, &mo) < 0 ||
	    !skip_char(&p, "-") || parse_digits(&p, 2, &d) < 0 || !skip_char(&p, "Tt") ||
	    parse_digits(&p, 2, &h) < 0 || !skip_char(&p, ":") || parse_digits(&p, 2, &mi) < 0 ||
	    !skip_char(&p, ":") || parse_digits(&p, 2, &sec) < 0 || parse_fraction(&p, &usec) < 0 ||
	    parse_rfc3339_offset(p, &offset) < 0)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400;
	t += h * 3600 + mi * 60 + sec - offset;
	if (t < 0)
		return -EINVAL;
	*ret = (uint64_t)t * USEC_PER_SEC + (uint64_t)usec;
	return 0;
}

uint64_t decode_trigger_time(const cJSON *obj)
{
	const char *s = decode_meta_map_string(obj, "annotations",
					       "endpoints.kubernetes.io/last-change-trigger-time");
	uint64_t t = 0;

	if (!s || parse_rfc3339(s, &t) < 0)
		return 0;
	return t;
}
