/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdarg.h>

#include "log.h"

static int max_level = LOG_INFO;
static bool prefix = true;

void log_set_max_level(int level)
{
	max_level = level;
}

int log_get_max_level(void)
{
	return max_level;
}

void log_set_prefix(bool with_prefix)
{
	prefix = with_prefix;
}

void log_msg(int level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int saved = errno;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (prefix)
		fprintf(stderr, "<%d>%s\n", level, buf);
	else
		fprintf(stderr, "%s\n", buf);
	errno = saved;
}

char *strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}
