/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <stdarg.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include "systemd/notify.h"

#define SYSTEMD_DEST "org.freedesktop.systemd1"
#define SYSTEMD_PRIVATE "unix:path=/run/systemd/private"
#define CALL_TIMEOUT_USEC (2 * USEC_PER_SEC)

void notify_ready(void)
{
	sd_notify(0, "READY=1");
}

void notify_reloading(void)
{
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now_usec(CLOCK_MONOTONIC));
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void notify_status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sd_notifyf(0, "STATUS=%s", buf);
}

bool notify_enabled(void)
{
	const char *s = getenv("NOTIFY_SOCKET");

	return s && *s;
}

/* PID 1's private socket needs no D-Bus daemon (which may be stopping). */
static int manager_bus(sd_bus **ret)
{
	sd_bus *bus = NULL;
	int r;

	if (geteuid() == 0 && access("/run/systemd/private", F_OK) == 0) {
		r = sd_bus_new(&bus);
		if (r >= 0)
			r = sd_bus_set_address(bus, SYSTEMD_PRIVATE);
		if (r >= 0)
			r = sd_bus_start(bus);
		if (r >= 0) {
			*ret = bus;
			return 0;
		}
		bus = sd_bus_unref(bus);
	}
	r = sd_bus_open_system(&bus);
	if (r < 0)
		return r;
	*ret = bus;
	return 0;
}

int notify_unit_job(char **ret_unit, char **ret_job)
{
	_cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
	_cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
	_cleanup_(freep) char *unit = NULL, *path = NULL, *type = NULL;
	sd_bus_error e = SD_BUS_ERROR_NULL;
	const char *job_path;
	uint32_t id;
	int r;

	/* Only a process systemd started itself (the daemon, ExecStopPost=)
	 * asks: a shell in some service's cgroup that runs kube-annex by hand
	 * must not take that service's job for its own. */
	if (getppid() != 1)
		return -ENODATA;
	r = sd_pid_get_unit(0, &unit);
	if (r < 0)
		return r;
	if (!strstr(unit, ".service"))
		return -ENODATA;
	r = manager_bus(&bus);
	if (r < 0)
		return r;
	r = sd_bus_set_method_call_timeout(bus, CALL_TIMEOUT_USEC);
	if (r >= 0)
		r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit, &path);
	if (r >= 0)
		r = sd_bus_get_property(bus, SYSTEMD_DEST, path, "org.freedesktop.systemd1.Unit",
					"Job", &e, &reply, "(uo)");
	if (r >= 0)
		r = sd_bus_message_read(reply, "(uo)", &id, &job_path);
	if (r >= 0 && id != 0)
		r = sd_bus_get_property_string(bus, SYSTEMD_DEST, job_path,
					       "org.freedesktop.systemd1.Job", "JobType", &e, &type);
	sd_bus_error_free(&e);
	if (r < 0)
		return r;
	*ret_unit = TAKE_PTR(unit);
	*ret_job = TAKE_PTR(type);
	return 0;
}
