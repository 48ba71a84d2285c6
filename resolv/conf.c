/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resolv.conf as glibc reads it (resolv/res_init.c), and the file direct
 * mode writes. Pure: no I/O except resolv_read_file().
 *
 * glibc: lines starting with '#' or ';' are comments; the keyword is the
 * first word; "search" and "domain" replace the search list (last one
 * wins); "options" accumulate; glibc ignores what it cannot parse, but we
 * refuse a nameserver that is not an address rather than write a file
 * around something we do not understand.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>

#include "resolv/internal.h"

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

struct resolv_conf *resolv_conf_free(struct resolv_conf *c)
{
	if (!c)
		return NULL;
	strv_free(c->nameservers, c->n_nameservers);
	strv_free(c->search, c->n_search);
	strv_free(c->options, c->n_options);
	strv_free(c->other, c->n_other);
	free(c);
	return NULL;
}

static int strv_push(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv;
	char *copy;

	if (*n >= RESOLV_CONF_MAX_ITEMS)
		return -E2BIG;
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*n)++] = copy;
	*v = nv;
	return 0;
}

static bool strv_contains(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* The next word of [*p, end); false at the end or at a comment. */
static bool next_word(const char **p, const char *end, const char **ret, size_t *ret_len)
{
	const char *s = *p, *e;

	while (s < end && is_blank(*s))
		s++;
	if (s == end || *s == '#' || *s == ';')
		return false;
	for (e = s; e < end && !is_blank(*e); e++)
		;
	*ret = s;
	*ret_len = (size_t)(e - s);
	*p = e;
	return true;
}

/* "1.2.3.4", "fd00::1", "fe80::1%eth0" */
static bool nameserver_valid(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + IF_NAMESIZE];
	struct in6_addr a6;
	struct in_addr a4;
	char *pct;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, &a4) == 1)
		return true;
	pct = strchr(buf, '%');
	if (pct) {
		if (pct[1] == 0)
			return false;
		*pct = 0;
	}
	return inet_pton(AF_INET6, buf, &a6) == 1;
}

static bool word_is(const char *w, size_t len, const char *keyword)
{
	return len == strlen(keyword) && memcmp(w, keyword, len) == 0;
}

static bool line_starts_with(const char *line, size_t len, const char *start)
{
	size_t m = strlen(start);

	return len >= m && memcmp(line, start, m) == 0;
}

static bool line_has_marker(const char *line, size_t len)
{
	return line_starts_with(line, len, RESOLV_MARKER);
}

static int parse_line(struct resolv_conf *c, const char *line, const char *end, char **ret_error,
		      unsigned lineno)
{
	const char *p = line, *w, *kw;
	size_t wlen, kwlen;
	int r;

	if (!next_word(&p, end, &kw, &kwlen))
		return 0;
	if (word_is(kw, kwlen, "nameserver")) {
		if (!next_word(&p, end, &w, &wlen))
			return 0; /* glibc ignores it too */
		if (!nameserver_valid(w, wlen)) {
			if (ret_error)
				*ret_error = strdup_printf("line %u: nameserver '%.*s' is not an IP address",
							   lineno, (int)(wlen > 64 ? 64 : wlen), w);
			return -EINVAL;
		}
		return strv_push(&c->nameservers, &c->n_nameservers, w, wlen);
	}
	if (word_is(kw, kwlen, "search") || word_is(kw, kwlen, "domain")) {
		strv_free(c->search, c->n_search);
		c->search = NULL;
		c->n_search = 0;
		while (next_word(&p, end, &w, &wlen)) {
			if (wlen > RESOLV_CONF_MAX_TOKEN)
				return -E2BIG;
			r = strv_push(&c->search, &c->n_search, w, wlen);
			if (r < 0)
				return r;
			if (word_is(kw, kwlen, "domain"))
				break;
		}
		return 0;
	}
	if (word_is(kw, kwlen, "options")) {
		while (next_word(&p, end, &w, &wlen)) {
			if (wlen > RESOLV_CONF_MAX_TOKEN)
				return -E2BIG;
			r = strv_push(&c->options, &c->n_options, w, wlen);
			if (r < 0)
				return r;
		}
		return 0;
	}
	/* sortlist, or something this glibc does not know: keep it. */
	while (end > kw && is_blank(end[-1]))
		end--;
	return strv_push(&c->other, &c->n_other, kw, (size_t)(end - kw));
}

int resolv_conf_parse(const char *text, size_t len, struct resolv_conf **ret, char **ret_error)
{
	_cleanup_(resolv_conf_freep) struct resolv_conf *c = NULL;
	const char *p = text, *end = text + len;
	bool leading = true;
	unsigned lineno = 0;
	int r;

	if (ret_error)
		*ret_error = NULL;
	if (len > RESOLV_CONF_MAX_SIZE) {
		if (ret_error)
			*ret_error = strdup_printf("larger than %u bytes", RESOLV_CONF_MAX_SIZE);
		return -EFBIG;
	}
	if (len > 0 && memchr(text, 0, len)) {
		if (ret_error)
			*ret_error = strdup("contains NUL bytes: not a text file");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *s = p;

		lineno++;
		while (s < eol && is_blank(*s))
			s++;
		if (s < eol && (*s == '#' || *s == ';')) {
			if (leading && line_has_marker(p, (size_t)(eol - p)))
				c->ours = true;
		} else if (s < eol) {
			leading = false;
			r = parse_line(c, p, eol, ret_error, lineno);
			if (r < 0) {
				if (r == -E2BIG && ret_error && !*ret_error)
					*ret_error = strdup_printf("line %u: more than %u entries or a word "
								   "longer than %u bytes",
								   lineno, RESOLV_CONF_MAX_ITEMS,
								   RESOLV_CONF_MAX_TOKEN);
				return r;
			}
		}
		p = nl ? nl + 1 : end;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

/* Does one of the comment lines before the first other line start with
 * start? */
static bool leading_comment_starts(const char *text, size_t len, const char *start)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *s = p;

		while (s < eol && is_blank(*s))
			s++;
		if (s < eol && *s != '#' && *s != ';')
			return false;
		if (line_starts_with(p, (size_t)(eol - p), start))
			return true;
		p = nl ? nl + 1 : end;
	}
	return false;
}

bool resolv_conf_is_ours(const char *text, size_t len)
{
	return leading_comment_starts(text, len, RESOLV_MARKER);
}

bool resolv_conf_by_networkmanager(const char *text, size_t len)
{
	return leading_comment_starts(text, len, RESOLV_NM_HEADER);
}

bool resolv_conf_only_nameserver(const struct resolv_conf *c, const char *address)
{
	if (c->n_nameservers == 0)
		return false;
	for (size_t i = 0; i < c->n_nameservers; i++)
		if (!streq(c->nameservers[i], address))
			return false;
	return true;
}

static bool is_stub(const char *ns)
{
	return streq(ns, RESOLV_STUB_ADDRESS) || streq(ns, RESOLV_STUB_PROXY_ADDRESS);
}

bool resolv_conf_only_stub(const struct resolv_conf *c)
{
	if (c->n_nameservers == 0)
		return false;
	for (size_t i = 0; i < c->n_nameservers; i++)
		if (!is_stub(c->nameservers[i]))
			return false;
	return true;
}

/* ---- rendering ---------------------------------------------------------- */

struct buf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *fmt, ...) _printf_(2, 3);
static void buf_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *ns = realloc(b->s, cap);

		if (!ns) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
}

static bool option_is(const char *opt, const char *name)
{
	size_t n = strlen(name);

	return strncmp(opt, name, n) == 0 && (opt[n] == 0 || opt[n] == ':');
}

static bool options_have(const struct resolv_conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_options; i++)
		if (option_is(c->options[i], name))
			return true;
	return false;
}

int resolv_conf_render(const struct resolv_conf *original, const struct kube_ip *servers,
		       size_t n_servers, const char *domain, const char *backup_path, char **ret)
{
	struct buf b = {};
	char addr[INET6_ADDRSTRLEN], svc_domain[300];
	char **ours = NULL;
	size_t n_ours = 0, n_ns = 0;
	int r = 0;

	if (n_servers == 0 || resolv_domain_check(domain) < 0)
		return -EINVAL;
	snprintf(svc_domain, sizeof(svc_domain), "svc.%s", domain);

	buf_add(&b, "%s: cluster DNS first, then this host's own servers.\n", RESOLV_MARKER);
	buf_add(&b, "# The original file is kept as %s and is put back when\n"
		    "# kube-annex stops (or by `kube-annex --cleanup`). Edits here are lost then.\n",
		backup_path);
	for (size_t i = 0; i < n_servers && r >= 0; i++) {
		kube_ip_format(&servers[i], addr, sizeof(addr));
		if (strv_contains(ours, n_ours, addr))
			continue;
		r = strv_push(&ours, &n_ours, addr, strlen(addr));
		buf_add(&b, "nameserver %s\n", addr);
		n_ns++;
	}
	for (size_t i = 0; i < original->n_nameservers && r >= 0; i++) {
		const char *ns = original->nameservers[i];

		if (strv_contains(ours, n_ours, ns) || is_stub(ns))
			continue;
		if (n_ns == 3)
			buf_add(&b, "# glibc uses the first 3 nameservers only\n");
		buf_add(&b, "nameserver %s\n", ns);
		n_ns++;
	}
	strv_free(ours, n_ours);
	if (r < 0) {
		free(b.s);
		return r;
	}

	buf_add(&b, "search %s %s", svc_domain, domain);
	for (size_t i = 0; i < original->n_search; i++) {
		const char *d = original->search[i];

		if (strcasecmp(d, svc_domain) == 0 || strcasecmp(d, domain) == 0 || streq(d, "."))
			continue;
		buf_add(&b, " %s", d);
	}
	buf_add(&b, "\n");

	buf_add(&b, "options");
	for (size_t i = 0; i < original->n_options; i++)
		if (!option_is(original->options[i], "rotate"))
			buf_add(&b, " %s", original->options[i]);
	if (!options_have(original, "timeout"))
		buf_add(&b, " timeout:1");
	if (!options_have(original, "attempts"))
		buf_add(&b, " attempts:2");
	buf_add(&b, "\n");
	for (size_t i = 0; i < original->n_other; i++)
		buf_add(&b, "%s\n", original->other[i]);

	if (b.oom) {
		free(b.s);
		return -ENOMEM;
	}
	*ret = b.s;
	return 0;
}

/* ---- NetworkManager's files -------------------------------------------- */

int resolv_nm_render_dnsmasq(const struct kube_ip *servers, size_t n_servers,
			     const char *const *domains, size_t n_domains, char **ret)
{
	struct buf b = {};
	char addr[INET6_ADDRSTRLEN];

	if (n_servers == 0 || n_domains == 0)
		return -EINVAL;
	for (size_t i = 0; i < n_domains; i++)
		if (resolv_domain_check(domains[i]) < 0)
			return -EINVAL;
	buf_add(&b, "%s for NetworkManager's dnsmasq: these domains go to the\n"
		    "# cluster DNS, every other name as before. Removed when kube-annex stops\n"
		    "# (or by `kube-annex --cleanup`); edits here are lost.\n",
		RESOLV_MARKER);
	for (size_t i = 0; i < n_domains; i++)
		for (size_t j = 0; j < n_servers; j++) {
			kube_ip_format(&servers[j], addr, sizeof(addr));
			buf_add(&b, "server=/%s/%s\n", domains[i], addr);
		}
	if (b.oom) {
		free(b.s);
		return -ENOMEM;
	}
	*ret = b.s;
	return 0;
}

int resolv_nm_render_conf(const char *dnsmasq_path, char **ret)
{
	*ret = strdup_printf("%s: NetworkManager runs its dnsmasq plugin, so that\n"
			     "# the cluster domain can go to the cluster DNS (%s)\n"
			     "# and every other name to this host's servers as before. Removed when\n"
			     "# kube-annex stops (or by `kube-annex --cleanup`).\n"
			     "[main]\n"
			     "dns=dnsmasq\n",
			     RESOLV_MARKER, dnsmasq_path);
	return *ret ? 0 : -ENOMEM;
}

/* ---- nsswitch.conf ------------------------------------------------------ */

bool resolv_nsswitch_resolve_first(const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	bool resolve = false;

	/* glibc uses the last "hosts:" line; "[...]" actions are words too. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *s = p, *w;
		size_t wlen;

		while (s < eol && is_blank(*s))
			s++;
		if ((size_t)(eol - s) >= 6 && strncmp(s, "hosts:", 6) == 0) {
			s += 6;
			resolve = false;
			while (next_word(&s, eol, &w, &wlen)) {
				if (word_is(w, wlen, "resolve")) {
					resolve = true;
					break;
				}
				if (word_is(w, wlen, "dns"))
					break;
			}
		}
		p = nl ? nl + 1 : end;
	}
	return resolve;
}

/* ---- domains ------------------------------------------------------------ */

int resolv_domain_check(const char *domain)
{
	size_t len, label = 0;

	if (!domain)
		return -EINVAL;
	len = strlen(domain);
	if (len == 0 || len > 253 || domain[0] == '.' || domain[len - 1] == '.')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = domain[i];

		if (c == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return -EINVAL;
		if (++label > 63)
			return -EINVAL;
	}
	return 0;
}

/* ---- reverse zones -------------------------------------------------------- */

/* The zone of the first "labels" octets (IPv4) or nibbles (IPv6) of a. */
static char *reverse_zone(const struct kube_ip *a, unsigned labels)
{
	struct buf b = {};

	for (unsigned i = labels; i > 0; i--) {
		unsigned v = a->family == AF_INET ? a->bytes[i - 1] :
			     (a->bytes[(i - 1) / 2] >> ((i - 1) % 2 ? 0 : 4)) & 0xf;

		buf_add(&b, a->family == AF_INET ? "%u." : "%x.", v);
	}
	buf_add(&b, "%s", a->family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

int resolv_reverse_zones(const char *cidr, char ***zones, size_t *n_zones)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(cidr, '/');
	unsigned long plen;
	unsigned bits, step, labels, count;
	struct kube_ip a;
	char *end;

	if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, cidr, (size_t)(slash - cidr));
	addr[slash - cidr] = 0;
	if (kube_ip_parse(addr, &a) < 0 || !slash[1] || slash[1] == '-' || slash[1] == '+')
		return -EINVAL;
	errno = 0;
	plen = strtoul(slash + 1, &end, 10);
	bits = a.family == AF_INET ? 32 : 128;
	if (errno || *end || plen == 0 || plen > bits)
		return -EINVAL;
	/* Host bits zero, as for --service-cidr everywhere else. */
	for (unsigned i = (unsigned)plen; i < bits; i++)
		if (a.bytes[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL;
	/* Zones exist on label boundaries: 8 bits per label for IPv4, 4 for
	 * IPv6; a prefix length between two boundaries takes several zones. */
	step = a.family == AF_INET ? 8 : 4;
	labels = ((unsigned)plen + step - 1) / step;
	count = 1u << (labels * step - (unsigned)plen);
	if (*n_zones + count > RESOLV_MAX_REVERSE_ZONES)
		return -E2BIG;
	for (unsigned i = 0; i < count; i++) {
		struct kube_ip z = a;
		unsigned last = labels * step - 1; /* the last bit of the zone */
		char *zone;
		int r;

		/* i counts through the bits between the prefix and the boundary. */
		for (unsigned bit = 0; bit < labels * step - (unsigned)plen; bit++)
			if (i & (1u << bit))
				z.bytes[(last - bit) / 8] |= (uint8_t)(0x80 >> ((last - bit) % 8));
		zone = reverse_zone(&z, labels);
		if (!zone)
			return -ENOMEM;
		r = strv_push(zones, n_zones, zone, strlen(zone));
		free(zone);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- files -------------------------------------------------------------- */

int resolv_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_(closep) int fd = -1;
	_cleanup_(freep) char *data = NULL;
	size_t len = 0;
	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	data = malloc(max + 2);
	if (!data)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, data + len, max + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	data[len] = 0;
	*ret = TAKE_PTR(data);
	if (ret_len)
		*ret_len = len;
	return 0;
}
