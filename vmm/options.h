/*
 * options.h — moat's command line. options_parse fills a moat_config from
 * argv (and any --config file), and the network backend's configuration
 * (--net, --no-gateway, --tap, --pcap; see netback.h) into net, starting
 * from netback_config_default. It prints nothing itself except --help and
 * --version text to out.
 * Returns OPTIONS_RUN (go on), OPTIONS_EXIT_OK (help/version printed) or
 * OPTIONS_ERROR (err holds the reason; exit status 2).
 */
#ifndef MOAT_OPTIONS_H
#define MOAT_OPTIONS_H

#include <stdio.h>
#include "config.h"
#include "netback.h"

#define MOAT_VERSION "0.1.0"

enum options_result { OPTIONS_RUN, OPTIONS_EXIT_OK, OPTIONS_ERROR };

enum options_result options_parse(int argc, char **argv, struct moat_config *cfg,
                                  struct netback_config *net, FILE *out, char *err,
                                  size_t errlen);
/* True when net differs from the defaults (some network option was given). */
bool options_net_given(const struct netback_config *net);
void options_usage(FILE *out);

#endif /* MOAT_OPTIONS_H */
