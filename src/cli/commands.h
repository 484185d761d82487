/* Entry points of the subcommands (private to src/cli). Each parses its own options
 * with mpl_cli_parse and returns a status that main() agrees on. */
#ifndef MPILLM_CLI_COMMANDS_H
#define MPILLM_CLI_COMMANDS_H

#include "mpillm/cli.h"

enum mpl_status mpl_cmd_info(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_infer(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_convert(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_inspect(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_tokenize(int argc, char **argv, struct mpl_cli_ctx *ctx);

#endif
