/*
 * options.h — moat's command line. options_parse fills a moat_config from
 * argv (and any --config file). It prints nothing itself except --help and
 * --version text to out.
 * Returns OPTIONS_RUN (go on), OPTIONS_EXIT_OK (help/version printed) or
 * OPTIONS_ERROR (err holds the reason; exit status 2).
 */
#ifndef MOAT_OPTIONS_H
#define MOAT_OPTIONS_H

#include <stdio.h>
#include "config.h"

#define MOAT_VERSION "0.1.0"

enum options_result { OPTIONS_RUN, OPTIONS_EXIT_OK, OPTIONS_ERROR };

enum options_result options_parse(int argc, char **argv, struct moat_config *cfg,
                                  FILE *out, char *err, size_t errlen);
void options_usage(FILE *out);

#endif /* MOAT_OPTIONS_H */
