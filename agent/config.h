/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * agent/config: the daemon's settings. Each setting has one name, used as
 * the long option and as the key of the configuration file:
 *
 *     --min-sync-interval 10        min-sync-interval: 10
 *     --no-external-ips             external-ips: false
 *     --gateway                     gateway: true
 *     --dns-address 10.96.0.10      dns-address: [10.96.0.10]
 *
 * Defaults, then the file (/etc/kube-annex/config.yaml, or --config), then
 * the command line: the last one wins. The file is YAML: one mapping of
 * those keys to scalars (a list for the address keys); an empty value
 * means the default. Unknown keys, duplicates and bad values are errors
 * that name the file, the line, the key and the value.
 *
 * Parsing does no I/O except reading the file (config_load); the rest is
 * pure and fuzzed.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/util.h"
#include "resolv/resolv.h"

#define CONFIG_DEFAULT_PATH "/etc/kube-annex/config.yaml"
#define CONFIG_DEFAULT_KUBECONFIG "/etc/kube-annex/kubeconfig"
#define CONFIG_MAX_SIZE (64u << 10)
#define CONFIG_MAX_MIN_SYNC_INTERVAL_MS 60000u

struct config {
	char *kubeconfig;      /* NULL: $KUBECONFIG, then CONFIG_DEFAULT_KUBECONFIG */
	char *context;         /* NULL: current-context */
	/* import scope (kube/'s struct kube_scope) */
	char *namespaces;      /* "NS[,NS...]"; NULL: all namespaces */
	char *label_selector;  /* Services only; NULL: all */
	bool keep_rules;
	uint64_t min_sync_interval_usec;
	char *zone;            /* NULL: none */
	bool external_ips;
	char *service_cidrs;   /* "CIDR[,CIDR...]"; NULL: none */
	bool gateway;          /* also for traffic routed through this host */
	bool verbose;
	/* cluster DNS on the host; NULL means resolv/'s default */
	char *dns_mode;
	char *cluster_domain;
	char *dns_service;
	char *dns_addresses;      /* "IP[,IP...]" */
	char *dns_link_addresses; /* "IP[,IP]" */
	/* agent/operate.h: HTTP health and metrics, the control socket */
	char *metrics_address;    /* "ADDR:PORT", "[ADDR]:PORT" or "off"; NULL: default */
	char *control_socket;     /* NULL: default */
};

/* A config with every default. NULL on OOM. */
struct config *config_new(void);
struct config *config_free(struct config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);

/* resolv/'s view of the DNS settings; the strings stay c's. */
void config_dns_options(const struct config *c, struct resolv_options *ret);

/*
 * Apply a configuration file's text over c. path is only used in
 * messages. On failure c may be partly changed; *ret_error names the file,
 * the line and the key, e.g.
 *   "/etc/kube-annex/config.yaml:3: min-sync-interval: '70000' is not a
 *    number of milliseconds between 0 and 60000"
 * -EINVAL for anything wrong in the text, -EFBIG above CONFIG_MAX_SIZE,
 * -ENOMEM.
 */
int config_parse(struct config *c, const char *path, const char *text, size_t len,
		 char **ret_error);

/* What the command line asks for. */
enum config_action {
	CONFIG_ACTION_RUN,
	CONFIG_ACTION_CLEANUP,      /* --cleanup */
	CONFIG_ACTION_STOP_CLEANUP, /* --cleanup=unless-restarting (ExecStopPost=) */
	CONFIG_ACTION_CHECK,        /* --check-config */
	CONFIG_ACTION_RELOAD,       /* --reload PID (ExecReload=) */
	CONFIG_ACTION_HELP,
	CONFIG_ACTION_VERSION,
};

/* The command line, kept as given so that a reload can apply it again over
 * the file it re-reads. */
struct config_args {
	enum config_action action;
	const char *config_path; /* --config; NULL: CONFIG_DEFAULT_PATH if it exists */
	const char *reload_pid;  /* --reload */
	size_t n_settings;
	struct config_arg {
		unsigned setting; /* index into the settings table */
		const char *value;
	} *settings;
};

/*
 * Parse argv (getopt_long). -EINVAL with *ret_error set for an unknown
 * option or a bad value ("--min-sync-interval: '70000' is not ...");
 * getopt's own messages for unknown options go to stderr, *ret_error is
 * then NULL. The args point into argv.
 */
int config_parse_argv(int argc, char **argv, struct config_args *ret, char **ret_error);
void config_args_done(struct config_args *a);

/*
 * Defaults, then the configuration file, then the command line settings.
 * A missing default file is fine; a missing --config file is an error.
 * *ret_path is the file read, or NULL when there was none.
 */
int config_load(const struct config_args *a, struct config **ret, char **ret_path,
		char **ret_error);

/* The kubeconfig to use: the setting, else the first file of $KUBECONFIG
 * (*ret_note says so when it lists several), else the default. */
char *config_kubeconfig_path(const struct config *c, char **ret_note);

/* Which settings differ, as "key, key" (NULL when none, or on OOM). */
char *config_diff(const struct config *a, const struct config *b);

void config_help(FILE *f);
