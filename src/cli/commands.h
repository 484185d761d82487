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
enum mpl_status mpl_cmd_blend_init(int argc, char **argv, struct mpl_cli_ctx *ctx);
/* bench for the seed network (cmd_bench_blend.c); is_blend: -m names a blend model file */
enum mpl_status mpl_cmd_bench_blend(int argc, char **argv, struct mpl_cli_ctx *ctx);
bool mpl_cmd_bench_is_blend(int argc, char **argv);
enum mpl_status mpl_cmd_shard(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_generate(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_bench(int argc, char **argv, struct mpl_cli_ctx *ctx);
enum mpl_status mpl_cmd_eval(int argc, char **argv, struct mpl_cli_ctx *ctx);

#endif
