/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A netlink socket the way every module wants it: close-on-exec, bound,
 * with extended ACKs (the kernel's error text) and capped ACKs when the
 * kernel has them.
 */

struct mnl_socket;

/* bus: NETLINK_ROUTE, NETLINK_NETFILTER; flags: SOCK_NONBLOCK or 0.
 * 0 or -errno. */
int netlink_open(int bus, int flags, struct mnl_socket **ret);
