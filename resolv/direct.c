/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Direct mode's file handling: /etc/resolv.conf replaced by a file of our
 * own, the original kept next to it, put back only while the file is still
 * ours (Tailscale's net/dns direct mode does the same).
 *
 * Every replacement is atomic (a temporary file in the same directory,
 * fsync, rename), except where the file is a mount point (a bind-mounted
 * resolv.conf in a container or under ProtectSystem=): rename() then fails
 * with EBUSY or EXDEV and the file is rewritten in place instead.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "resolv/internal.h"

bool resolv_file_immutable(const char *path)
{
	_cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int flags = 0;

	if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
		return false;
	return flags & (FS_IMMUTABLE_FL | FS_APPEND_FL);
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* "<dir>/.<base>.kube-annex-XXXXXX" next to path. */
static char *temp_template(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup_printf(".%s.kube-annex-XXXXXX", path);
	return strdup_printf("%.*s/.%s.kube-annex-XXXXXX", (int)(slash - path), path, slash + 1);
}

/* Write data to a new temporary file next to path with mode; returns its name. */
static int temp_write(const char *path, const char *data, size_t len, mode_t mode,
		      char **ret_tmp)
{
	_cleanup_(freep) char *tmp = temp_template(path);
	_cleanup_(closep) int fd = -1;
	int r;

	if (!tmp)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r >= 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	*ret_tmp = TAKE_PTR(tmp);
	return 0;
}

static int rewrite_in_place(const char *path, const char *data, size_t len)
{
	_cleanup_(closep) int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 0) < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

/* Replace path with data: atomically, or in place when it is a mount point. */
static int replace_file(const char *path, const char *data, size_t len, mode_t mode,
			bool *ret_in_place)
{
	_cleanup_(freep) char *tmp = NULL;
	int r;

	*ret_in_place = false;
	r = temp_write(path, data, len, mode, &tmp);
	if (r < 0 || !tmp)
		return r < 0 ? r : -ENOMEM;
	if (rename(tmp, path) >= 0)
		return 0;
	r = -errno;
	unlink(tmp);
	if (r != -EBUSY && r != -EXDEV)
		return r;
	*ret_in_place = true;
	return rewrite_in_place(path, data, len);
}

int resolv_write_file(const char *path, const char *data, mode_t mode)
{
	_cleanup_(freep) char *tmp = NULL;
	int r;

	r = temp_write(path, data, strlen(data), mode, &tmp);
	if (r < 0 || !tmp)
		return r < 0 ? r : -ENOMEM;
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

/* A copy of the directory entry path as dest: a symlink stays a symlink
 * with the same target; a file keeps content and mode. */
static int save_copy(const char *path, const char *dest)
{
	_cleanup_(freep) char *tmp = NULL, *content = NULL;
	struct stat st;
	size_t len;
	int r;

	if (lstat(path, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		target[n] = 0;
		tmp = temp_template(dest);
		if (!tmp)
			return -ENOMEM;
		/* mkstemp()'s name, then a symlink in its place. */
		_cleanup_(closep) int fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (unlink(tmp) < 0 || symlink(target, tmp) < 0)
			return -errno;
	} else {
		r = resolv_read_file(path, RESOLV_CONF_MAX_SIZE, &content, &len);
		if (r < 0)
			return r;
		r = temp_write(dest, content, len, st.st_mode & 07777, &tmp);
		if (r < 0 || !tmp)
			return r < 0 ? r : -ENOMEM;
	}
	if (rename(tmp, dest) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

static bool conf_is_ours(const char *path)
{
	_cleanup_(freep) char *text = NULL;
	struct stat st;
	size_t len;

	/* Ours is always a regular file (never a symlink we followed). */
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (resolv_read_file(path, RESOLV_CONF_MAX_SIZE, &text, &len) < 0)
		return false;
	return resolv_conf_is_ours(text, len);
}

int resolv_direct_read_original(const struct resolv_direct_paths *p, char **ret, size_t *ret_len,
				char **ret_error)
{
	const char *from = p->conf;
	int r;

	if (conf_is_ours(p->conf)) {
		if (access(p->backup, F_OK) < 0) {
			if (ret_error)
				*ret_error = strdup_printf("%s carries kube-annex's marker but the "
							   "original (%s) is missing: restore it by hand",
							   p->conf, p->backup);
			return -ENOENT;
		}
		from = p->backup;
	}
	r = resolv_read_file(from, RESOLV_CONF_MAX_SIZE, ret, ret_len);
	if (r == -ENOENT) {
		/* No resolv.conf at all: glibc then asks 127.0.0.1. */
		*ret = strdup("");
		if (!*ret)
			return -ENOMEM;
		*ret_len = 0;
		return 0;
	}
	if (r < 0 && ret_error)
		*ret_error = strdup_printf("reading %s: %s", from, strerror(-r));
	return r;
}

int resolv_direct_write(const struct resolv_direct_paths *p, const char *rendered,
			char **ret_error)
{
	bool in_place, had_conf;
	struct stat st;
	int r;

	if (ret_error)
		*ret_error = NULL;
	had_conf = lstat(p->conf, &st) >= 0;
	if (!had_conf) {
		/* Nothing to restore later would differ from "no file". */
		if (ret_error)
			*ret_error = strdup_printf("%s does not exist: nothing to add the cluster DNS to",
						   p->conf);
		return -ENOENT;
	}
	if (resolv_file_immutable(p->conf)) {
		if (ret_error)
			*ret_error = strdup_printf("%s is immutable (chattr +i): not touching it",
						   p->conf);
		return -EPERM;
	}
	if (!conf_is_ours(p->conf)) {
		r = save_copy(p->conf, p->backup);
		if (r < 0) {
			if (ret_error)
				*ret_error = strdup_printf("saving %s as %s: %s", p->conf, p->backup,
							   strerror(-r));
			return r;
		}
	}
	r = replace_file(p->conf, rendered, strlen(rendered), 0644, &in_place);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("writing %s%s: %s", p->conf,
						   in_place ? " in place" : "", strerror(-r));
		/* Nothing of ours is in place: the backup would mislead. */
		if (!conf_is_ours(p->conf))
			unlink(p->backup);
		return r;
	}
	return in_place ? 1 : 0;
}

int resolv_direct_restore(const struct resolv_direct_paths *p, bool *ret_restored,
			  char **ret_error)
{
	_cleanup_(freep) char *content = NULL;
	struct stat st;
	size_t len;
	int r;

	if (ret_error)
		*ret_error = NULL;
	*ret_restored = false;
	if (lstat(p->backup, &st) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (conf_is_ours(p->conf)) {
			if (ret_error)
				*ret_error = strdup_printf("%s is kube-annex's but %s, the original, "
							   "is missing: restore it by hand",
							   p->conf, p->backup);
			return -ENOENT;
		}
		return 0;
	}
	if (!conf_is_ours(p->conf)) {
		/* Someone else wrote it since: theirs is newer than our backup. */
		if (unlink(p->backup) < 0)
			return -errno;
		return 0;
	}
	if (rename(p->backup, p->conf) >= 0) {
		*ret_restored = true;
		return 0;
	}
	r = -errno;
	if ((r != -EBUSY && r != -EXDEV) || S_ISLNK(st.st_mode)) {
		if (ret_error)
			*ret_error = strdup_printf("renaming %s to %s: %s", p->backup, p->conf,
						   strerror(-r));
		return r;
	}
	/* A bind-mounted file: its content back in place. */
	r = resolv_read_file(p->backup, RESOLV_CONF_MAX_SIZE, &content, &len);
	if (r >= 0)
		r = rewrite_in_place(p->conf, content, len);
	if (r < 0) {
		if (ret_error)
			*ret_error = strdup_printf("writing %s back in place: %s", p->conf,
						   strerror(-r));
		return r;
	}
	unlink(p->backup);
	*ret_restored = true;
	return 0;
}
