/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * systemd/: the sd_notify contract. Every call is a no-op when the process
 * is not run by systemd (no $NOTIFY_SOCKET), so the daemon works unchanged
 * in the foreground.
 */

#include "lib/util.h"

void notify_ready(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) _printf_(1, 2);
