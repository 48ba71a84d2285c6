/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket, /run/kube-annex/control: a unix stream socket, mode
 * 0600 in a 0700 directory, so only root reaches it (peers are checked
 * with SO_PEERCRED as well). One request per connection, one line of JSON:
 *
 *   {"verb":"status"}
 *   {"verb":"explain","query":"shop/web"}
 *   {"verb":"explain","query":"web.shop.svc.cluster.local",
 *    "addresses":["10.96.5.5"]}            what the client's resolver said
 *
 * answered with one JSON document, then the daemon closes the connection.
 * Everything runs on the daemon's sd-event loop; a client that is slow to
 * send or to read is dropped after CLIENT_TIMEOUT_USEC.
 *
 * The client side (`kube-annex status|explain`) connects, prints the
 * answer as text (or as JSON with --json) and exits with:
 *   0 healthy / reachable, 1 degraded / not reachable, 2 usage,
 *   3 not running (nothing answers on the socket), 4 unknown (no
 *   permission, garbled answer).
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-event.h>

#include "agent/agent.h"
#include "agent/operate.h"
#include "lib/log.h"

#define REQUEST_MAX (64u * 1024u)
#define ANSWER_MAX (64u << 20)
#define MAX_CLIENTS 8u
#define CLIENT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define CLIENT_WAIT_SEC 30
#define RESOLVE_TIMEOUT_SEC 15u
#define MAX_RESOLVED 16u

struct client;

struct control {
	struct agent *agent;
	char *path;
	int fd;
	ino_t ino;
	sd_event_source *listen_source;
	struct client *clients;
	unsigned n_clients;
};

struct client {
	struct control *control;
	struct client *next;
	int fd;
	sd_event_source *io;
	sd_event_source *timer;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_done;
};

/* ---- daemon side ----------------------------------------------------------- */

static void client_free(struct client *cl)
{
	struct control *c = cl->control;
	struct client **p;

	for (p = &c->clients; *p; p = &(*p)->next)
		if (*p == cl) {
			*p = cl->next;
			break;
		}
	c->n_clients--;
	sd_event_source_disable_unref(cl->io);
	sd_event_source_disable_unref(cl->timer);
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->in);
	free(cl->out);
	free(cl);
}

static cJSON *answer(struct control *c, const char *request, size_t len)
{
	cJSON *req = cJSON_ParseWithLength(request, len), *doc;
	const cJSON *verb = cJSON_GetObjectItemCaseSensitive(req, "verb");

	if (cJSON_IsString(verb) && streq(verb->valuestring, "status"))
		doc = status_build(c->agent);
	else if (cJSON_IsString(verb) && streq(verb->valuestring, "explain"))
		doc = explain_build(c->agent, req);
	else {
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "error", "unknown request");
	}
	cJSON_Delete(req);
	return doc;
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void client_answer(struct client *cl)
{
	cJSON *doc = answer(cl->control, cl->in ? cl->in : "", cl->in_len);
	char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;

	cJSON_Delete(doc);
	if (!text) {
		client_free(cl);
		return;
	}
	cl->out = strdup_printf("%s\n", text);
	free(text);
	if (!cl->out) {
		client_free(cl);
		return;
	}
	cl->out_len = strlen(cl->out);
	sd_event_source_set_io_events(cl->io, EPOLLOUT);
}

static int on_client_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct client *cl = userdata;
	ssize_t n;

	if (cl->out) {
		n = send(fd, cl->out + cl->out_done, cl->out_len - cl->out_done, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			client_free(cl);
			return 0;
		}
		cl->out_done += (size_t)n;
		if (cl->out_done == cl->out_len)
			client_free(cl);
		return 0;
	}
	if (!cl->in) {
		cl->in = malloc(REQUEST_MAX + 1);
		if (!cl->in) {
			client_free(cl);
			return 0;
		}
	}
	n = recv(fd, cl->in + cl->in_len, REQUEST_MAX - cl->in_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n < 0) {
		client_free(cl);
		return 0;
	}
	cl->in_len += (size_t)n;
	cl->in[cl->in_len] = 0;
	if (n == 0 || memchr(cl->in, '\n', cl->in_len) || cl->in_len == REQUEST_MAX)
		client_answer(cl);
	return 0;
}

static int on_client_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	client_free(userdata);
	return 0;
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control *c = userdata;
	struct client *cl;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (cfd < 0)
		return 0;
	if (c->n_clients >= MAX_CLIENTS || !peer_allowed(cfd)) {
		close(cfd);
		return 0;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(cfd);
		return 0;
	}
	cl->control = c;
	cl->fd = cfd;
	cl->next = c->clients;
	c->clients = cl;
	c->n_clients++;
	if (sd_event_add_io(c->agent->event, &cl->io, cfd, EPOLLIN, on_client_io, cl) < 0 ||
	    sd_event_add_time_relative(c->agent->event, &cl->timer, CLOCK_MONOTONIC,
				       CLIENT_TIMEOUT_USEC, USEC_PER_MSEC * 100, on_client_timeout,
				       cl) < 0)
		client_free(cl);
	return 0;
}

static int make_parent(const char *path)
{
	_cleanup_(freep) char *dir = strdup(path);
	char *slash;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int sockaddr_of(const char *path, struct sockaddr_un *ret, socklen_t *ret_len)
{
	*ret = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(ret->sun_path))
		return -ENAMETOOLONG;
	memcpy(ret->sun_path, path, strlen(path) + 1);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	return 0;
}

/* Another running kube-annex answers on path: leave its socket alone. */
static bool path_in_use(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool used;

	if (fd < 0)
		return false;
	used = connect(fd, (const struct sockaddr *)sa, len) == 0;
	close(fd);
	return used;
}

int control_new(struct agent *a, const char *path, struct control **ret)
{
	struct control *c;
	struct sockaddr_un sa;
	socklen_t len;
	struct stat st;
	mode_t old;
	int r;

	*ret = NULL;
	r = sockaddr_of(path, &sa, &len);
	if (r < 0)
		return r;
	if (path_in_use(&sa, len)) {
		log_warning("Another kube-annex answers on %s: this one offers no status/explain "
			    "(give it its own --control-socket)",
			    path);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->agent = a;
	c->fd = -1;
	c->path = strdup(path);
	if (!c->path) {
		control_free(c);
		return -ENOMEM;
	}
	r = make_parent(path);
	if (r < 0)
		goto fail;
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		r = -errno;
		goto fail;
	}
	(void)unlink(path); /* a stale socket of a process that is gone */
	old = umask(0077);
	r = bind(c->fd, (struct sockaddr *)&sa, len) < 0 ? -errno : 0;
	umask(old);
	if (r < 0)
		goto fail;
	if (chmod(path, 0600) < 0 || stat(path, &st) < 0 || listen(c->fd, 16) < 0) {
		r = -errno;
		goto fail;
	}
	c->ino = st.st_ino;
	r = sd_event_add_io(a->event, &c->listen_source, c->fd, EPOLLIN, on_accept, c);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(c->listen_source, "control");
	*ret = c;
	return 0;
fail:
	log_error("Cannot listen on %s: %s; `kube-annex status` and `explain` are not "
		  "available",
		  path, strerror(-r));
	control_free(c);
	return r == -ENOMEM ? r : 0;
}

struct control *control_free(struct control *c)
{
	struct stat st;

	if (!c)
		return NULL;
	while (c->clients)
		client_free(c->clients);
	sd_event_source_disable_unref(c->listen_source);
	if (c->fd >= 0) {
		/* Only our own socket: another instance may have replaced it. */
		if (c->ino && stat(c->path, &st) == 0 && st.st_ino == c->ino)
			(void)unlink(c->path);
		close(c->fd);
	}
	free(c->path);
	free(c);
	return NULL;
}

/* ---- client side ------------------------------------------------------------ */

static void on_alarm(int sig)
{
	static const char msg[] = "kube-annex: the host's resolver did not answer in time\n";

	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(OPERATE_EXIT_UNKNOWN);
}

/* What the host's resolver says about name, as the request's "addresses" or
 * "resolve_error". */
static void resolve_into(cJSON *req, const char *name)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	cJSON *arr;
	int r;

	signal(SIGALRM, on_alarm);
	alarm(RESOLVE_TIMEOUT_SEC);
	r = getaddrinfo(name, NULL, &hints, &res);
	alarm(0);
	if (r != 0) {
		cJSON_AddStringToObject(req, "resolve_error",
					r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return;
	}
	arr = cJSON_AddArrayToObject(req, "addresses");
	for (struct addrinfo *ai = res; ai && cJSON_GetArraySize(arr) < (int)MAX_RESOLVED;
	     ai = ai->ai_next) {
		char host[NI_MAXHOST];
		const cJSON *x;
		bool dup = false;

		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0,
				NI_NUMERICHOST) != 0)
			continue;
		host[strcspn(host, "%")] = 0;
		cJSON_ArrayForEach(x, arr)
			dup = dup || streq(x->valuestring, host);
		if (!dup)
			cJSON_AddItemToArray(arr, cJSON_CreateString(host));
	}
	freeaddrinfo(res);
}

static int ask(const char *path, const cJSON *req, cJSON **ret)
{
	struct sockaddr_un sa;
	struct timeval tv = { .tv_sec = CLIENT_WAIT_SEC };
	_cleanup_(closep) int fd = -1;
	_cleanup_(freep) char *text = NULL, *buf = NULL;
	size_t len = 0, cap = 0;
	socklen_t salen;
	ssize_t n;

	if (sockaddr_of(path, &sa, &salen) < 0) {
		log_error("Control socket path too long: %s", path);
		return OPERATE_EXIT_USAGE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED) {
			log_error("kube-annex is not running (nothing answers on %s)", path);
			return OPERATE_EXIT_NOT_RUNNING;
		}
		log_error("Cannot connect to %s: %s%s", path, strerror(errno),
			  errno == EACCES || errno == EPERM ? " (run as root)" : "");
		return OPERATE_EXIT_UNKNOWN;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	text = cJSON_PrintUnformatted(req);
	if (!text)
		return OPERATE_EXIT_UNKNOWN;
	if (send(fd, text, strlen(text), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		log_error("Cannot send to %s: %s", path, strerror(errno));
		return OPERATE_EXIT_UNKNOWN;
	}
	(void)shutdown(fd, SHUT_WR);
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *b;

			if (cap >= ANSWER_MAX) {
				log_error("The answer from %s is too large", path);
				return OPERATE_EXIT_UNKNOWN;
			}
			cap = cap ? cap * 2 : 65536;
			b = realloc(buf, cap);
			if (!b)
				return OPERATE_EXIT_UNKNOWN;
			buf = b;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("No answer from kube-annex on %s: %s", path, strerror(errno));
			return OPERATE_EXIT_UNKNOWN;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = buf ? cJSON_ParseWithLength(buf, len) : NULL;
	if (!*ret) {
		log_error("Garbled answer from kube-annex on %s", path);
		return OPERATE_EXIT_UNKNOWN;
	}
	return 0;
}

/* The exit code a document implies, without printing it. */
static int exit_code(const cJSON *doc, bool status)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		return OPERATE_EXIT_UNKNOWN;
	r = status ? status_render(doc, f) : explain_render(doc, f);
	fclose(f);
	free(buf);
	return r;
}

static void client_help(void)
{
	printf("Usage: kube-annex status [--json] [--control-socket PATH]\n"
	       "       kube-annex explain [--json] [--control-socket PATH] QUERY\n\n"
	       "Ask the running daemon. QUERY is NAMESPACE/NAME (a Service), IP, IP:PORT,\n"
	       "[IPv6]:PORT (optionally /tcp, /udp, /sctp), a Service name, or a DNS name\n"
	       "(resolved here with the host's resolver, then explained).\n\n"
	       "Exit status: 0 healthy / reachable, 1 degraded / not reachable, 2 usage,\n"
	       "3 kube-annex is not running, 4 unknown (e.g. permission denied).\n");
}

bool operate_is_verb(const char *arg)
{
	return arg && (streq(arg, "status") || streq(arg, "explain"));
}

int operate_client_main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "control-socket", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *path = OPERATE_DEFAULT_CONTROL_PATH, *query = NULL;
	bool json = false, status = streq(argv[0], "status");
	struct explain_query q;
	cJSON *req = NULL, *doc = NULL;
	int c, r;

	log_set_prefix(false);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'c':
			path = optarg;
			break;
		case 'h':
			client_help();
			return OPERATE_EXIT_OK;
		default:
			return OPERATE_EXIT_USAGE;
		}
	if (status && optind != argc) {
		log_error("status takes no argument (see kube-annex status --help)");
		return OPERATE_EXIT_USAGE;
	}
	if (!status) {
		if (optind + 1 != argc) {
			log_error("explain takes one QUERY (see kube-annex explain --help)");
			return OPERATE_EXIT_USAGE;
		}
		query = argv[optind];
		if (explain_parse_query(query, &q) < 0) {
			log_error("Cannot parse '%s': give NAMESPACE/NAME, IP, IP:PORT, [IPv6]:PORT "
				  "or a DNS name",
				  query);
			return OPERATE_EXIT_USAGE;
		}
	}
	req = cJSON_CreateObject();
	if (!req)
		return OPERATE_EXIT_UNKNOWN;
	cJSON_AddStringToObject(req, "verb", status ? "status" : "explain");
	if (query) {
		cJSON_AddStringToObject(req, "query", query);
		/* A name with a dot is a DNS name: resolve it here, where the host's
		 * resolver is, and never in the daemon's loop. A bare word may be a
		 * Service's name: ask first, resolve only if it is not. */
		if (q.kind == EXPLAIN_NAME && strchr(q.name, '.'))
			resolve_into(req, q.name);
	}
	r = ask(path, req, &doc);
	if (r == 0 && query && q.kind == EXPLAIN_NAME && !strchr(q.name, '.') &&
	    streq_ptr(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "kind")), "name")) {
		cJSON_Delete(doc);
		doc = NULL;
		resolve_into(req, q.name);
		r = ask(path, req, &doc);
	}
	cJSON_Delete(req);
	if (r != 0)
		return r;
	if (json) {
		char *text = cJSON_Print(doc);

		if (text)
			printf("%s\n", text);
		free(text);
		r = exit_code(doc, status);
	} else {
		r = status ? status_render(doc, stdout) : explain_render(doc, stdout);
	}
	cJSON_Delete(doc);
	fflush(stdout);
	return r;
}
