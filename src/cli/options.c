/* The option parser shared by every subcommand: long and short options, --help,
 * and INI config files (libinih) read through --config. */
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/cli.h"

/* values taken from a config file outlive the parse: the commands keep pointers */
#define MAX_CONFIG_VALUES 128
static char *config_values[MAX_CONFIG_VALUES];
static int n_config_values = 0;

static const struct mpl_opt *find_long(const struct mpl_cmd_spec *spec, const char *name,
                                       size_t len) {
  for (int i = 0; i < spec->n_opts; i++)
    if (strlen(spec->opts[i].name) == len && strncmp(spec->opts[i].name, name, len) == 0)
      return &spec->opts[i];
  return NULL;
}

static const struct mpl_opt *find_short(const struct mpl_cmd_spec *spec, char c) {
  for (int i = 0; i < spec->n_opts; i++)
    if (spec->opts[i].short_name == c) return &spec->opts[i];
  return NULL;
}

static enum mpl_status set_value(const struct mpl_cmd_spec *spec, const struct mpl_opt *opt,
                                 const char *value, const char *where) {
  char *end = NULL;
  errno = 0;
  switch (opt->type) {
  case MPL_OPT_FLAG: {
    bool on = !value || strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
              strcmp(value, "yes") == 0 || strcmp(value, "on") == 0;
    bool off = value && (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 ||
                         strcmp(value, "no") == 0 || strcmp(value, "off") == 0);
    if (!on && !off)
      return mpl_error_set(MPL_ERR_ARG, "%s: option --%s of '%s' takes true or false, not '%s'",
                           where, opt->name, spec->name, value);
    *(bool *)opt->dst = on;
    return MPL_OK;
  }
  case MPL_OPT_INT: {
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0')
      return mpl_error_set(MPL_ERR_ARG, "%s: option --%s of '%s' takes a whole number, not '%s'",
                           where, opt->name, spec->name, value);
    *(long *)opt->dst = v;
    return MPL_OK;
  }
  case MPL_OPT_DOUBLE: {
    double v = strtod(value, &end);
    if (errno || end == value || *end != '\0' || !isfinite(v))
      return mpl_error_set(MPL_ERR_ARG, "%s: option --%s of '%s' takes a number, not '%s'", where,
                           opt->name, spec->name, value);
    *(double *)opt->dst = v;
    return MPL_OK;
  }
  case MPL_OPT_STRING:
    *(const char **)opt->dst = value;
    return MPL_OK;
  }
  return MPL_OK;
}

struct config_state {
  const struct mpl_cmd_spec *spec;
  const char *path;
  enum mpl_status status;
};

static int on_config_entry(void *user, const char *section, const char *key, const char *value) {
  struct config_state *state = user;
  if (state->status != MPL_OK) return 0;
  if (strcmp(section, "mpillm") != 0 && strcmp(section, state->spec->name) != 0) return 1;
  const struct mpl_opt *opt = find_long(state->spec, key, strlen(key));
  if (!opt) {
    /* keys of the shared [mpillm] section may belong to other commands */
    if (strcmp(section, "mpillm") == 0) return 1;
    state->status = mpl_error_set(MPL_ERR_ARG, "%s: [%s] has no option '%s' (see mpillm %s --help)",
                                  state->path, section, key, state->spec->name);
    return 0;
  }
  if (n_config_values == MAX_CONFIG_VALUES) {
    state->status = mpl_error_set(MPL_ERR_ARG, "%s: more than %d values", state->path,
                                  MAX_CONFIG_VALUES);
    return 0;
  }
  char *copy = strdup(value);
  config_values[n_config_values++] = copy;
  state->status = set_value(state->spec, opt, copy, state->path);
  return state->status == MPL_OK;
}

static enum mpl_status read_config(const struct mpl_cmd_spec *spec, const char *path) {
  struct config_state state = {spec, path, MPL_OK};
  int rc = ini_parse(path, on_config_entry, &state);
  if (state.status != MPL_OK) return state.status;
  if (rc == -1) return mpl_error_set(MPL_ERR_IO, "cannot open config file %s", path);
  if (rc == -2) return mpl_error_set(MPL_ERR_NOMEM, "out of memory reading config file %s", path);
  if (rc > 0) return mpl_error_set(MPL_ERR_ARG, "%s:%d: not a valid INI line", path, rc);
  return MPL_OK;
}

void mpl_cli_print_help(const struct mpl_cmd_spec *spec) {
  printf("usage: %s\n\n%s\n\noptions:\n", spec->usage, spec->summary);
  for (int i = 0; i < spec->n_opts; i++) {
    const struct mpl_opt *o = &spec->opts[i];
    char left[64];
    if (o->short_name)
      snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, o->value_name ? " " : "",
               o->value_name ? o->value_name : "");
    else
      snprintf(left, sizeof left, "    --%s%s%s", o->name, o->value_name ? " " : "",
               o->value_name ? o->value_name : "");
    printf("  %-30s %s\n", left, o->help);
  }
  printf("  %-30s %s\n", "    --config FILE", "read options from an INI file ([mpillm] and [<command>])");
  printf("  %-30s %s\n", "-h, --help", "show this help");
}

enum mpl_status mpl_cli_parse(const struct mpl_cmd_spec *spec, int argc, char **argv,
                              char ***positional, int *n_positional, bool *help_shown) {
  *help_shown = false;
  *n_positional = 0;
  *positional = NULL;
  /* first pass: --help and --config, so the file is read before the command line wins */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      if (mpl_log_rank() == 0) mpl_cli_print_help(spec);
      *help_shown = true;
      return MPL_OK;
    }
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    const char *path = NULL;
    if (strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc)
        return mpl_error_set(MPL_ERR_ARG, "option --config of '%s' needs a FILE", spec->name);
      path = argv[++i];
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      path = argv[i] + 9;
    }
    if (path) {
      enum mpl_status st = read_config(spec, path);
      if (st != MPL_OK) return st;
    }
  }
  char **pos = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
  MPL_ASSERT(pos != NULL, "no memory for %d arguments", argc);
  int n_pos = 0;
  bool only_positional = false;
  for (int i = 1; i < argc; i++) {
    char *arg = argv[i];
    if (only_positional || arg[0] != '-' || arg[1] == '\0') {
      pos[n_pos++] = arg;
      continue;
    }
    if (strcmp(arg, "--") == 0) {
      only_positional = true;
      continue;
    }
    const struct mpl_opt *opt = NULL;
    const char *value = NULL;
    char shown[64];
    if (arg[1] == '-') {
      const char *name = arg + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      if (len == 6 && strncmp(name, "config", 6) == 0) {
        if (!eq) i++;
        continue;
      }
      opt = find_long(spec, name, len);
      snprintf(shown, sizeof shown, "--%.*s", (int)len, name);
      if (eq) value = eq + 1;
    } else {
      opt = find_short(spec, arg[1]);
      snprintf(shown, sizeof shown, "-%c", arg[1]);
      if (arg[2] != '\0') value = arg + 2;
    }
    if (!opt) {
      free(pos);
      return mpl_error_set(MPL_ERR_ARG, "unknown option %s for '%s' (see mpillm %s --help)", shown,
                           spec->name, spec->name);
    }
    if (opt->type == MPL_OPT_FLAG) {
      enum mpl_status st = set_value(spec, opt, value, "command line");
      if (st != MPL_OK) {
        free(pos);
        return st;
      }
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        free(pos);
        return mpl_error_set(MPL_ERR_ARG, "option %s of '%s' needs a value (%s)", shown, spec->name,
                             opt->value_name ? opt->value_name : "VALUE");
      }
      value = argv[++i];
    }
    enum mpl_status st = set_value(spec, opt, value, "command line");
    if (st != MPL_OK) {
      free(pos);
      return st;
    }
  }
  if (n_pos < spec->min_positional || n_pos > spec->max_positional) {
    free(pos);
    return mpl_error_set(MPL_ERR_ARG, "'%s' takes %d to %d arguments, got %d (usage: %s)",
                         spec->name, spec->min_positional, spec->max_positional, n_pos, spec->usage);
  }
  *positional = pos;
  *n_positional = n_pos;
  return MPL_OK;
}

enum mpl_status mpl_cli_parse_options(const struct mpl_cmd_spec *spec, int argc, char **argv,
                                      bool *help_shown) {
  char **positional = NULL;
  int n_positional = 0;
  enum mpl_status st = mpl_cli_parse(spec, argc, argv, &positional, &n_positional, help_shown);
  free(positional);
  return st;
}
