/* The subcommand table: one line per command; each lives in cmd_<name>.c. */
#include "mpillm/cli.h"
#include "commands.h"

const struct mpl_cli_command mpl_cli_commands[] = {
    {"info", "show the MPI layout, threads, binding and library versions this run sees", mpl_cmd_info, false},
    {"infer", "run the seed network (a blend model) on a batch of rows: model, data, split or mix parallel", mpl_cmd_infer, false},
    {"convert", "import a Hugging Face checkpoint directory into an HDF5 model file", mpl_cmd_convert, true},
    {"inspect", "print a model file's config and tensors, verifying every checksum", mpl_cmd_inspect, true},
    {"tokenize", "print the token ids of a text as JSON, or decode ids back to text", mpl_cmd_tokenize, true},
    {"blend-init", "write a seed-network (blend) model of a given shape with random weights", mpl_cmd_blend_init, true},
    {"shard", "cut a model file into per-rank shard files plus a manifest", mpl_cmd_shard, true},
    {"generate", "generate text from prompts or a request file on any dp x pp x tp layout", mpl_cmd_generate, false},
    {"bench", "measure prefill/decode throughput, latency, communication and memory of a layout", mpl_cmd_bench, false},
    {"eval", "perplexity of the model on a text file, on any layout", mpl_cmd_eval, false},
};

const int mpl_cli_n_commands = (int)(sizeof mpl_cli_commands / sizeof mpl_cli_commands[0]);
