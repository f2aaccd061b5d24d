/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * airlockd's configuration file (/etc/airlock/airlockd.conf when
 * installed): the long options of its command line, one per line as
 * KEY=VALUE ("group=airlock", "warm-pool=4"); a flag takes true or false.
 * Blank lines and lines starting with '#' are ignored.  The file becomes
 * command-line arguments ("--group=airlock") that airlockd parses before
 * its real ones: the command line overrides the file, and both are checked
 * by the same code.
 */

#include <getopt.h>

#include "error.h"

/*
 * Read path into *args, a NULL-terminated vector of "--KEY=VALUE" (or
 * "--KEY" for a flag set to true) to be freed with al_strv_free.  Every key
 * must be one of options (getopt_long's table, ended by a zero entry), and
 * none of those named in refused (NULL-terminated: options that make no
 * sense in a file, like "help").  -ENOENT when path does not exist; any
 * other error names the file and line.
 */
int config_load(const char *path, const struct option *options, const char *const *refused,
                char ***args, struct al_error *err);
