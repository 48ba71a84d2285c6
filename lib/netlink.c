/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/netlink.h"

int netlink_open(int bus, int flags, struct mnl_socket **ret)
{
	struct mnl_socket *nl;
	int one = 1;

	nl = mnl_socket_open2(bus, SOCK_CLOEXEC | flags);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;

		mnl_socket_close(nl);
		return r;
	}
	/* Both are optional: old kernels just say less. */
	if (mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one)) < 0)
		log_debug("netlink: NETLINK_EXT_ACK unsupported: %m");
	if (mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one)) < 0)
		log_debug("netlink: NETLINK_CAP_ACK unsupported: %m");
	*ret = nl;
	return 0;
}
