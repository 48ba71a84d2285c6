/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

#include <syslog.h>

#include "util.h"

/*
 * Logging for the whole program. Lines go to stderr with a "<N>" priority
 * prefix, which journald turns into the record's priority when the daemon
 * runs under systemd, and which stays readable on a terminal.
 *
 * Library-like modules (kube/, model/, nft/, resolv/) only use log_debug();
 * the agent logs once, with context.
 */
void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_prefix(bool with_prefix);
void log_msg(int level, const char *fmt, ...) _printf_(2, 3);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
