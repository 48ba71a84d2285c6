/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for kubeconfig loading and token files. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "kube/kube.h"
#include "lib/util.h"

static char tmpdir[] = "/tmp/test-kubeconfig-XXXXXX";

static const char *data_dir(void)
{
	const char *d = getenv("KUBE_ANNEX_TEST_DATA");

	return d ? d : "tests/data";
}

/* data_dir()/rel as an absolute path, the way the loader resolves it. */
static char *data_path(const char *rel)
{
	char cwd[4096];
	const char *d = data_dir();

	if (d[0] == '/')
		return strdup_printf("%s/%s", d, rel);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	return strdup_printf("%s/%s/%s", cwd, d, rel);
}

static char *read_all(const char *path, size_t *ret_len)
{
	char *buf;
	FILE *f;
	long n;

	f = fopen(path, "re");
	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

/* Write tmpdir/name; returns the path (static buffer). */
static const char *write_file(const char *name, const char *content, size_t len)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *write_config(const char *yaml)
{
	return write_file("kubeconfig", yaml, strlen(yaml));
}

static struct kube_config *load_ok(const char *path, const char *context)
{
	struct kube_config *c = NULL;
	char *error = (char *)"unset";

	if (kube_config_load(path, context, &c, &error) < 0)
		fail_msg("%s", error);
	assert_null(error);
	assert_string_equal(c->path, path);
	return c;
}

static void assert_data(const char *data, size_t len, const char *file)
{
	_cleanup_(freep) char *path = data_path(file), *want = NULL;
	size_t want_len;

	want = read_all(path, &want_len);
	assert_non_null(data);
	assert_int_equal(len, want_len);
	assert_memory_equal(data, want, len);
	assert_int_equal(data[len], '\0');
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	return nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- what works ---------------------------------------------------------- */

/* kubeadm's admin.conf: everything embedded. */
static void test_admin_conf(void **state)
{
	_cleanup_(freep) char *path = data_path("kubeconfig/admin.conf");
	struct kube_config *c = load_ok(path, NULL);

	assert_string_equal(c->context, "kubernetes-admin@kubernetes");
	assert_string_equal(c->cluster, "kubernetes");
	assert_string_equal(c->user, "kubernetes-admin");
	assert_string_equal(c->server, "https://192.168.99.103:6443");
	assert_null(c->tls_server_name);
	assert_null(c->ca_file);
	assert_data(c->ca_data, c->ca_data_len, "kubeconfig/pki/ca.crt");
	assert_false(c->insecure_skip_tls_verify);
	assert_null(c->cert_file);
	assert_data(c->cert_data, c->cert_data_len, "kubeconfig/pki/admin.crt");
	assert_null(c->key_file);
	assert_data(c->key_data, c->key_data_len, "kubeconfig/pki/admin.key");
	assert_null(c->token);
	assert_null(c->token_file);
	assert_null(c->username);
	assert_null(c->password);
	kube_config_free(c);
}

/* A file-based kubeconfig with relative paths, and an explicit context. */
static void test_kube_annex_conf(void **state)
{
	_cleanup_(freep) char *path = data_path("kubeconfig/kube-annex.conf"), *ca = NULL,
			       *token_file = NULL, *token = NULL;
	struct kube_config *c = load_ok(path, NULL);

	ca = data_path("kubeconfig/pki/ca.crt");
	token_file = data_path("kubeconfig/token");
	assert_string_equal(c->context, "kube-annex@prod");
	assert_string_equal(c->server, "https://api.prod.example.com:6443");
	assert_string_equal(c->ca_file, ca);
	assert_null(c->ca_data);
	assert_string_equal(c->tls_server_name, "kubernetes.default.svc");
	assert_string_equal(c->token_file, token_file);
	assert_null(c->token);
	assert_int_equal(kube_token_read(c->token_file, &token), 0);
	assert_string_equal(token, "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ."
				   "eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1hbm5leDprdWJl"
				   "LWFubmV4In0.c2lnbmF0dXJl");
	kube_config_free(c);

	c = load_ok(path, "lab");
	assert_string_equal(c->context, "lab");
	assert_string_equal(c->cluster, "lab");
	assert_string_equal(c->user, "lab-admin");
	assert_string_equal(c->server, "http://127.0.0.1:8080");
	assert_true(c->insecure_skip_tls_verify);
	assert_null(c->ca_file);
	assert_string_equal(c->username, "admin");
	assert_string_equal(c->password, "s3cret: with colon");
	assert_null(c->token_file);
	kube_config_free(c);
}

#define CTX "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
#define CLUSTER "clusters:\n- name: k\n  cluster: {server: \"https://k:6443\"}\n"
#define USER "users:\n- name: u\n  user: {token: abc}\n"

static void test_relative_paths(void **state)
{
	static const char yaml[] = CTX CLUSTER
		"users:\n"
		"- name: u\n"
		"  user:\n"
		"    client-certificate: ../elsewhere/./u.crt\n"
		"    client-key: /etc/kube-annex/u.key\n"
		"    tokenFile: sub//dir/../token\n";
	_cleanup_(freep) char *cert = strdup_printf("%s", tmpdir), *token = NULL;
	struct kube_config *c;
	char cwd[4096], *slash;

	/* tmpdir/../elsewhere/u.crt == /tmp/elsewhere/u.crt */
	slash = strrchr(cert, '/');
	strcpy(slash, "/elsewhere/u.crt");
	token = strdup_printf("%s/sub/token", tmpdir);

	c = load_ok(write_config(yaml), NULL);
	assert_string_equal(c->cert_file, cert);
	assert_string_equal(c->key_file, "/etc/kube-annex/u.key");
	assert_string_equal(c->token_file, token);
	kube_config_free(c);

	/* the kubeconfig itself named relatively: paths still come out absolute */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	c = load_ok("./kubeconfig", NULL);
	assert_string_equal(c->cert_file, cert);
	assert_string_equal(c->token_file, token);
	kube_config_free(c);
	c = load_ok("kubeconfig", NULL);
	assert_string_equal(c->token_file, token);
	kube_config_free(c);
	assert_int_equal(chdir(cwd), 0);
}

static void test_fields(void **state)
{
	static const char yaml[] =
		"apiVersion: v1\n"
		"kind: Config\n"
		"current-context: other\n"
		"contexts:\n"
		"- name: c\n"
		"  context:\n"
		"    cluster: k\n"
		"    user: u\n"
		"- {name: other, context: {cluster: k2, user: u2}}\n"
		"clusters:\n"
		"- name: k\n"
		"  cluster:\n"
		"    server: HTTPS://k.example.com/k8s/clusters/c-1///\n"
		"    insecure-skip-tls-verify: yes\n"
		"    tls-server-name: kubernetes\n"
		"    proxy-url: http://proxy:3128\n"
		"- name: k2\n"
		"  cluster:\n"
		"    server: https://k2:6443\n"
		"    insecure-skip-tls-verify: False\n"
		"    certificate-authority-data: |\n"
		"      LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmZha2UKLS0t\n"
		"      LS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\n"
		"users:\n"
		"- name: u\n"
		"  user:\n"
		"    token: \"abc.def\"\n"
		"    client-certificate-data: YWI=\n"
		"    client-key-data: YQ==\n"
		"- name: u2\n"
		"  user:\n"
		"    username: ~\n"
		"    client-certificate: c.crt\n"
		"    client-key-data: YWJj\n";
	static const char ca[] = "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n";
	struct kube_config *c;

	c = load_ok(write_config(yaml), NULL);
	assert_string_equal(c->context, "other");
	assert_string_equal(c->server, "https://k2:6443");
	assert_false(c->insecure_skip_tls_verify);
	/* line-wrapped base64 in a literal block */
	assert_int_equal(c->ca_data_len, strlen(ca));
	assert_string_equal(c->ca_data, ca);
	assert_null(c->username);
	assert_non_null(c->cert_file);
	assert_string_equal(c->key_data, "abc");
	assert_int_equal(c->key_data_len, 3);
	kube_config_free(c);

	c = load_ok(write_config(yaml), "c");
	assert_string_equal(c->server, "HTTPS://k.example.com/k8s/clusters/c-1");
	assert_true(c->insecure_skip_tls_verify);
	assert_string_equal(c->tls_server_name, "kubernetes");
	/* a token and a client certificate may go together */
	assert_string_equal(c->token, "abc.def");
	assert_string_equal(c->cert_data, "ab");
	assert_int_equal(c->cert_data_len, 2);
	assert_string_equal(c->key_data, "a");
	assert_int_equal(c->key_data_len, 1);
	kube_config_free(c);
}

/* ---- what fails ------------------------------------------------------------ */

struct bad_config {
	const char *yaml;
	const char *context;
	int error;
	const char *message; /* after "<file>: "; a trailing '*' matches a prefix */
};

static const struct bad_config bad_configs[] = {
	{ "clusters: [\n", NULL, -EINVAL, "not YAML: *" },
	{ "a: b\n\tc: d\n", NULL, -EINVAL, "not YAML: *" },
	{ "", NULL, -EINVAL, "empty" },
	{ "# only a comment\n", NULL, -EINVAL, "empty" },
	{ "- a\n- b\n", NULL, -EINVAL, "not a mapping" },
	{ "just a string\n", NULL, -EINVAL, "not a mapping" },
	{ CLUSTER USER "contexts:\n- name: c\n  context: {cluster: k, user: u}\n", NULL, -EINVAL,
	  "current-context: not set, and no context was given" },
	{ "current-context: \"\"\n" CLUSTER USER, NULL, -EINVAL,
	  "current-context: not set, and no context was given" },
	{ "current-context: [c]\n", NULL, -EINVAL, "current-context: not a string" },
	{ CTX CLUSTER USER, "ghost", -EINVAL, "contexts: no context named \"ghost\"" },
	{ "current-context: ghost\n" CLUSTER USER, NULL, -EINVAL,
	  "contexts: no context named \"ghost\"" },
	{ "current-context: c\ncontexts: {c: {cluster: k}}\n", NULL, -EINVAL,
	  "contexts: not a list" },
	{ "current-context: c\ncontexts:\n- c\n", NULL, -EINVAL, "contexts[0]: not a mapping" },
	{ "current-context: c\ncontexts:\n- name: [c]\n", NULL, -EINVAL,
	  "contexts[0]: name: not a string" },
	{ "current-context: c\ncontexts:\n- name: c\n" CLUSTER USER, NULL, -EINVAL,
	  "contexts[0] \"c\": context: not set" },
	{ "current-context: c\ncontexts:\n- name: c\n  context: k\n", NULL, -EINVAL,
	  "contexts[0] \"c\": context: not a mapping" },
	{ "current-context: c\ncontexts:\n- name: x\n- name: c\n  context: {user: u}\n", NULL,
	  -EINVAL, "contexts[1] \"c\": cluster: not set" },
	{ "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\n", NULL, -EINVAL,
	  "contexts[0] \"c\": user: not set" },
	{ CTX USER, NULL, -EINVAL, "clusters: no cluster named \"k\" (used by contexts[0] \"c\")" },
	{ CTX CLUSTER, NULL, -EINVAL, "users: no user named \"u\" (used by contexts[0] \"c\")" },
	{ CTX CLUSTER "- name: k\n  cluster: {server: \"https://other\"}\n" USER, NULL, -EINVAL,
	  "clusters: name \"k\" is used twice (clusters[0] \"k\" and clusters[1])" },
	{ CTX "clusters:\n- name: k\n" USER, NULL, -EINVAL, "clusters[0] \"k\": cluster: not set" },
	{ CTX "clusters:\n- name: k\n  cluster: {}\n" USER, NULL, -EINVAL,
	  "clusters[0] \"k\": server: not set" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: {url: x}}\n" USER, NULL, -EINVAL,
	  "clusters[0] \"k\": server: not a string" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"ftp://k\"}\n" USER, NULL, -EINVAL,
	  "clusters[0] \"k\": server: \"ftp://k\" is not an https:// or http:// URL" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"k:6443\"}\n" USER, NULL, -EINVAL,
	  "clusters[0] \"k\": server: \"k:6443\" is not an https:// or http:// URL" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https:///\"}\n" USER, NULL, -EINVAL,
	  "clusters[0] \"k\": server: \"https:///\" is not an https:// or http:// URL" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https://k 6443\"}\n" USER, NULL,
	  -EINVAL, "clusters[0] \"k\": server: \"https://k 6443\" is not an https:// or http:// URL" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https://k\", "
	      "certificate-authority-data: \"not base64!\"}\n" USER,
	  NULL, -EINVAL, "clusters[0] \"k\": certificate-authority-data: invalid base64" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https://k\", "
	      "certificate-authority: ca.crt, certificate-authority-data: YQ==}\n" USER,
	  NULL, -EINVAL,
	  "clusters[0] \"k\": certificate-authority and certificate-authority-data are both set; "
	  "use one" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https://k\", "
	      "certificate-authority: ca.crt, insecure-skip-tls-verify: true}\n" USER,
	  NULL, -EINVAL,
	  "clusters[0] \"k\": insecure-skip-tls-verify and a certificate-authority are both set; "
	  "use one" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https://k\", "
	      "insecure-skip-tls-verify: maybe}\n" USER,
	  NULL, -EINVAL, "clusters[0] \"k\": insecure-skip-tls-verify: \"maybe\" is not a boolean" },
	{ CTX "clusters:\n- name: k\n  cluster: {server: \"https://k\", "
	      "insecure-skip-tls-verify: \"true\"}\n" USER,
	  NULL, -EINVAL, "clusters[0] \"k\": insecure-skip-tls-verify: \"true\" is not a boolean" },
	{ CTX CLUSTER "users:\n- name: x\n  user: {token: t}\n- name: u\n  user:\n"
		      "    client-certificate-data: YQ==\n    client-key-data: \"YQ=\"\n",
	  NULL, -EINVAL, "users[1] \"u\": client-key-data: invalid base64" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {}\n", NULL, -EINVAL,
	  "users[0] \"u\": user: no credentials (token, tokenFile, client-certificate or username)" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {password: p}\n", NULL, -EINVAL,
	  "users[0] \"u\": user: no credentials (token, tokenFile, client-certificate or username)" },
	{ CTX CLUSTER "users:\n- name: u\n", NULL, -EINVAL, "users[0] \"u\": user: not set" },
	{ CTX CLUSTER "users:\n- name: u\n  user: [token]\n", NULL, -EINVAL,
	  "users[0] \"u\": user: not a mapping" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {client-certificate: u.crt}\n", NULL, -EINVAL,
	  "users[0] \"u\": client-key: not set, but client-certificate is" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {client-key-data: YQ==}\n", NULL, -EINVAL,
	  "users[0] \"u\": client-certificate: not set, but client-key is" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {client-certificate: u.crt, "
		      "client-certificate-data: YQ==, client-key: u.key}\n",
	  NULL, -EINVAL,
	  "users[0] \"u\": client-certificate and client-certificate-data are both set; use one" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {token: t, username: a, password: b}\n", NULL,
	  -EINVAL, "users[0] \"u\": more than one authentication method (token and username/password)" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {token: \"a\\x01b\"}\n", NULL, -EINVAL,
	  "users[0] \"u\": token: contains control characters" },
	{ CTX CLUSTER "users:\n- name: u\n  user: {token: \"a\\0b\"}\n", NULL, -EINVAL,
	  "users[0] \"u\": token: contains a NUL byte" },
	{ CTX CLUSTER "users:\n- name: u\n  user:\n    exec:\n      apiVersion: "
		      "client.authentication.k8s.io/v1beta1\n      command: aws\n",
	  NULL, -EOPNOTSUPP,
	  "users[0] \"u\": exec: credential plugins are not supported; use a token, tokenFile or "
	  "client certificate" },
	{ CTX CLUSTER "users:\n- name: u\n  user:\n    token: t\n    auth-provider:\n"
		      "      name: oidc\n",
	  NULL, -EOPNOTSUPP,
	  "users[0] \"u\": auth-provider: credential plugins are not supported; use a token, "
	  "tokenFile or client certificate" },
};

/* The bad -data values Go's StdEncoding rejects too. */
static const char *const bad_base64[] = {
	"YQ", "YQ=", "Y=Q=", "YQ==YQ==", "YW Jj", "YWJ!", "=YWJ", "YWJj=", "YQ===", "Y===",
};

static void check_bad_config(const char *yaml, const char *context, int error,
			     const char *message)
{
	struct kube_config *c = NULL;
	const char *path = write_config(yaml);
	_cleanup_(freep) char *want = strdup_printf("%s: %s", path, message);
	char *got = NULL;
	size_t n = strlen(want);
	int r;

	r = kube_config_load(path, context, &c, &got);
	if (r != error)
		fail_msg("%s\n---\ngave %d (%s), expected %d", yaml, r, got, error);
	assert_null(c);
	assert_non_null(got);
	if (want[n - 1] == '*' ? strncmp(got, want, n - 1) != 0 : !streq(got, want))
		fail_msg("%s\n---\n  got      \"%s\"\n  expected \"%s\"", yaml, got, want);
	free(got);
	/* and without an error pointer */
	assert_int_equal(kube_config_load(path, context, &c, NULL), error);
}

static void test_bad_configs(void **state)
{
	char yaml[512];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_configs); i++)
		check_bad_config(bad_configs[i].yaml, bad_configs[i].context, bad_configs[i].error,
				 bad_configs[i].message);
	for (i = 0; i < ARRAY_SIZE(bad_base64); i++) {
		snprintf(yaml, sizeof(yaml),
			 CTX CLUSTER "users:\n- name: u\n  user: {client-certificate-data: YQ==, "
				     "client-key-data: \"%s\"}\n",
			 bad_base64[i]);
		check_bad_config(yaml, NULL, -EINVAL,
				 "users[0] \"u\": client-key-data: invalid base64");
	}
}

static void test_bad_files(void **state)
{
	_cleanup_(freep) char *missing = strdup_printf("%s/missing", tmpdir), *msg = NULL;
	struct kube_config *c = NULL;
	char *error = NULL, *big;
	const char *path;

	assert_int_equal(kube_config_load(missing, NULL, &c, &error), -ENOENT);
	msg = strdup_printf("%s: cannot read: No such file or directory", missing);
	assert_string_equal(error, msg);
	free(error);

	assert_int_equal(kube_config_load(tmpdir, NULL, &c, &error), -EISDIR);
	assert_non_null(strstr(error, ": cannot read: Is a directory"));
	assert_int_equal(strncmp(error, tmpdir, strlen(tmpdir)), 0);
	free(error);

	/* 1 MiB is the limit; comments keep the rest of the file valid */
	big = malloc((1u << 20) + 2);
	assert_non_null(big);
	memset(big, '#', (1u << 20) + 1);
	memcpy(big, CTX CLUSTER USER, strlen(CTX CLUSTER USER));
	big[strlen(CTX CLUSTER USER)] = '#';
	big[(1u << 20) - 1] = '\n';
	path = write_file("kubeconfig", big, 1u << 20);
	assert_int_equal(kube_config_load(path, NULL, &c, NULL), 0);
	c = kube_config_free(c);
	path = write_file("kubeconfig", big, (1u << 20) + 1);
	assert_int_equal(kube_config_load(path, NULL, &c, &error), -EFBIG);
	free(msg);
	msg = strdup_printf("%s: larger than 1048576 bytes", path);
	assert_string_equal(error, msg);
	free(error);
	free(big);

	/* root reads anything: only check EACCES where it can happen */
	if (geteuid() != 0) {
		path = write_config(CTX CLUSTER USER);
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(kube_config_load(path, NULL, &c, &error), -EACCES);
		assert_non_null(strstr(error, ": cannot read: Permission denied"));
		free(error);
		assert_int_equal(chmod(path, 0600), 0);
	}
}

/* ---- token files ------------------------------------------------------------ */

static int token_from(const char *content, size_t len, char **ret)
{
	return kube_token_read(write_file("token", content, len), ret);
}

static void test_token_read(void **state)
{
	_cleanup_(freep) char *missing = strdup_printf("%s/no-token", tmpdir);
	char *t = NULL, *big;

	assert_int_equal(token_from("abc.def-ghi_jkl\n", 16, &t), 0);
	assert_string_equal(t, "abc.def-ghi_jkl");
	free(t);
	assert_int_equal(token_from(" \t\r\nabc\r\n\n ", 11, &t), 0);
	assert_string_equal(t, "abc");
	free(t);
	assert_int_equal(token_from("abc", 3, &t), 0);
	assert_string_equal(t, "abc");
	free(t);

	assert_int_equal(token_from("", 0, &t), -EINVAL);
	assert_int_equal(token_from(" \n\n", 3, &t), -EINVAL);
	assert_int_equal(token_from("ab\ncd\n", 6, &t), -EINVAL);
	assert_int_equal(token_from("ab\0cd", 5, &t), -EINVAL);
	assert_int_equal(kube_token_read(missing, &t), -ENOENT);
	assert_int_equal(kube_token_read(tmpdir, &t), -EISDIR);

	big = malloc((64u << 10) + 1);
	assert_non_null(big);
	memset(big, 'a', (64u << 10) + 1);
	assert_int_equal(token_from(big, 64u << 10, &t), 0);
	assert_int_equal(strlen(t), 64u << 10);
	free(t);
	assert_int_equal(token_from(big, (64u << 10) + 1, &t), -EFBIG);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admin_conf),
		cmocka_unit_test(test_kube_annex_conf),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bad_configs),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_token_read),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
