/* mpillm runtime: sampling, the per-replica engine loop (pipeline stages with one
 * step per stage in flight, vocabulary-split logits), the rank-0 coordinator that shards
 * requests over data-parallel replicas and gathers the answers in request order,
 * perplexity evaluation, and the measurements the bench command reports. */
#ifndef MPILLM_RUNTIME_H
#define MPILLM_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpillm/core.h"
#include "mpillm/model.h"
#include "mpillm/parallel.h"

/* ---- sampling ------------------------------------------------------------------ */

/* How one request picks its next token. Applied in this order: repetition penalty
 * (over every distinct token of prompt + generated text, as transformers does:
 * positive logits divided by it, negative multiplied), then greedy when
 * temperature <= 0, otherwise logits / temperature, softmax, top-k, top-p (the
 * smallest set of most likely tokens whose mass reaches top_p), min-p (tokens with
 * probability below min_p x the largest are dropped), renormalise, one draw from the
 * request's xoshiro256** stream. */
struct mpl_sampler_params {
  double temperature;    /* <= 0: greedy (default 0) */
  int top_k;             /* 0: off */
  double top_p;          /* 1: off */
  double min_p;          /* 0: off */
  double repeat_penalty; /* 1: off */
  uint64_t seed;         /* the request's random stream */
};

void mpl_sampler_params_default(struct mpl_sampler_params *p);
/* MPL_ERR_ARG naming the option (and `what`, e.g. the request) when out of range. Local. */
enum mpl_status mpl_sampler_params_check(const struct mpl_sampler_params *p, const char *what);
/* Whether the choice is the plain argmax of the logits (no penalty, no temperature):
 * such requests need no gathered logits, only an arg-max across vocabulary slices. */
bool mpl_sampler_is_greedy(const struct mpl_sampler_params *p);

/* xoshiro256** (Blackman and Vigna), seeded through splitmix64. Local. */
struct mpl_sampler_rng {
  uint64_t s[4];
};
void mpl_sampler_rng_seed(struct mpl_sampler_rng *rng, uint64_t seed);
uint64_t mpl_sampler_rng_next(struct mpl_sampler_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double mpl_sampler_rng_uniform(struct mpl_sampler_rng *rng);

struct mpl_sampler; /* opaque: params, random stream and scratch for one vocabulary */
/* Scratch for vocab_size candidates is allocated once. Destroy with
 * mpl_sampler_destroy (NULL is safe). Local. */
enum mpl_status mpl_sampler_create(const struct mpl_sampler_params *p, int vocab_size,
                                   struct mpl_sampler **out);
void mpl_sampler_destroy(struct mpl_sampler *s);
/* The next token from logits [vocab_size] (not modified) given the tokens so far
 * (history [n_history]: prompt then generated). Ties go to the smallest id. Local. */
int32_t mpl_sampler_sample(struct mpl_sampler *s, const float *logits, const int32_t *history,
                           int n_history);
/* The probabilities the draw is made from (after every filter; 0 for dropped
 * tokens), into probs [vocab_size]; for tests. Does not advance the stream. Local. */
void mpl_sampler_probs(struct mpl_sampler *s, const float *logits, const int32_t *history,
                       int n_history, double *probs);

/* ---- requests ------------------------------------------------------------------ */

/* One generation request. Before tokenization a request may carry text; after it,
 * prompt holds the ids. */
struct mpl_request {
  char id[64];             /* from the request file, else its 0-based position */
  char *text;              /* prompt text or NULL (ids given); owned */
  int32_t *prompt;         /* [n_prompt]; owned */
  int n_prompt;
  int max_tokens;          /* -1: the command's -n */
  bool has_sampling;       /* sampling options given on this request's line */
  bool has_seed;
  struct mpl_sampler_params sampling;
};

/* "1,2,3" into ids (*ids freed by the caller with free()); MPL_ERR_ARG naming the
 * bad item. Local. */
enum mpl_status mpl_rt_parse_ids(const char *text, int32_t **ids, int *n_ids);
/* Reads a JSON-lines request file: each non-empty line an object with "prompt"
 * (text) or "ids"/"prompt_ids" (array of ints), and optionally "id", "max_tokens",
 * "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "seed". Unset
 * sampling fields take the values of defaults. Errors name the file and line.
 * Free with mpl_rt_requests_free. Local. */
enum mpl_status mpl_rt_read_requests(const char *path, const struct mpl_sampler_params *defaults,
                                     struct mpl_request **reqs, int *n_reqs);
void mpl_rt_requests_free(struct mpl_request *reqs, int n_reqs);

/* order [n] = the item indices by cost, largest first (ties: lower index first).
 * Local. */
void mpl_rt_longest_first(const int64_t *costs, int n, int *order);
/* Assigns n items of the given costs to n_groups groups, balancing the summed cost:
 * the largest items first, each to the least loaded group (ties: lowest group), so
 * the answer is the same on every rank. group_of [n]. Local. */
void mpl_rt_balance(const int64_t *costs, int n, int n_groups, int *group_of);

/* ---- the engine of one replica ------------------------------------------------- */

struct mpl_rt_options {
  int dp, pp, tp;               /* 0: inferred (mpl_par_layout_resolve) */
  const int *layers_per_stage;  /* [pp] or NULL: balanced by bytes */
  int micro_batch_tokens;       /* the fewest tokens of a pipeline micro-batch; 0: 8 */
};

/* A loaded model part on each rank of a dp x pp x tp grid, and its KV cache. */
struct mpl_rt; /* opaque */

/* Resolves the layout, builds the grid, checks that the model can take it (pp <=
 * n_layers, ...) and loads each rank's part. A bad layout or model is one error
 * on every rank. Collective on MPI_COMM_WORLD. Destroy with mpl_rt_destroy. */
enum mpl_status mpl_rt_create(const char *model_path, const struct mpl_rt_options *opts,
                              struct mpl_rt **out);
void mpl_rt_destroy(struct mpl_rt *rt);
const struct mpl_grid *mpl_rt_grid(const struct mpl_rt *rt);
const struct mpl_model_config *mpl_rt_config(const struct mpl_rt *rt);
struct mpl_model *mpl_rt_model(struct mpl_rt *rt);
/* Whether this rank runs its replica's loop (pp_rank 0, tp_rank 0). */
bool mpl_rt_is_driver(const struct mpl_rt *rt);

/* (Re)allocates the KV cache for n_slots sequences of n_ctx positions; n_ctx above
 * the model's context is MPL_ERR_RANGE. Collective on the world (agreed). */
enum mpl_status mpl_rt_reserve(struct mpl_rt *rt, int n_slots, int n_ctx);
int mpl_rt_n_ctx(const struct mpl_rt *rt);
int mpl_rt_n_slots(const struct mpl_rt *rt);

enum mpl_rt_logits {
  MPL_RT_LOGITS_ARGMAX, /* only the arg-max id of each logit row */
  MPL_RT_LOGITS_FULL,   /* the whole rows, [n_logits][vocab] */
  MPL_RT_LOGITS_NLL,    /* -log p(next token) of each row (mpl_rt_step_nll) */
};

/* One step of the replica: the driver passes the batch to its stage and down the
 * pipeline (token ids, then activations [n_tokens][hidden] from stage to stage, a step
 * alone cut into micro-batches so that the stages overlap); the last stage's
 * vocabulary slices are reduced (ARGMAX) or gathered (FULL) and sent to the driver,
 * which receives argmax [n_logits] or logits [n_logits][vocab]. Driver only, with no
 * step in flight; the other ranks of the replica are in mpl_rt_serve. A failure on
 * another rank returns an error here; mpl_rt_finish's agreement then gives its
 * message. */
enum mpl_status mpl_rt_step(struct mpl_rt *rt, const struct mpl_batch *batch,
                            enum mpl_rt_logits mode, float *logits, int32_t *argmax);
/* The same step in two halves, so that up to pp_size steps (of
 * different sequences) are in the pipeline at once: start returns once the driver's
 * own stage has passed the step on; wait hands back the oldest started step's outcome,
 * its outputs written into the logits/argmax given to its start (kept until then). */
enum mpl_status mpl_rt_start(struct mpl_rt *rt, const struct mpl_batch *batch,
                             enum mpl_rt_logits mode, float *logits, int32_t *argmax);
enum mpl_status mpl_rt_wait(struct mpl_rt *rt);
/* How many waves n_seqs sequences run as, each its own step in flight: one per
 * pipeline stage, at most one per sequence (1 without a pipeline). */
int mpl_rt_waves(const struct mpl_rt *rt, int n_seqs);
int mpl_rt_in_flight(const struct mpl_rt *rt);       /* steps started, not waited for */
/* mpl_rt_step for perplexity: nll[r] = -log softmax(logits of row r)[the batch's
 * token after row r's], in double, computed where the vocabulary slices are (a max,
 * then a sum of exponentials and the target's logit, reduced over the stage's tensor
 * ranks: 3 numbers a row instead of the whole row), and sent to the driver. Each
 * row's next token must belong to the same sequence. Driver only; collective on the
 * replica. */
enum mpl_status mpl_rt_step_nll(struct mpl_rt *rt, const struct mpl_batch *batch, double *nll);
/* What a non-driver rank does: takes part in its driver's steps until the driver
 * calls mpl_rt_finish; returns the replica's agreed outcome of them. Collective on the
 * replica. */
enum mpl_status mpl_rt_serve(struct mpl_rt *rt);
/* Driver only: waits out the steps in flight, releases the replica's servers and
 * returns the replica's agreed outcome, which names the first failing rank; a caller
 * whose step failed reports this one. */
enum mpl_status mpl_rt_finish(struct mpl_rt *rt);

/* ---- generation (the coordinator) --------------------------------------------- */

struct mpl_rt_result {
  int32_t *tokens;     /* [n_tokens] generated; owned */
  int n_tokens;
  bool stopped_eos;    /* ended by an end-of-sequence token (not included in tokens) */
  double prefill_s;    /* the step that ran its prompt */
  double decode_s;     /* from the end of its prefill to its last token */
};

/* Called on world rank 0 for each token that its replica generates, as it comes
 * (request index, token id); with one request, that is every token of it. */
typedef void (*mpl_rt_token_fn)(void *user, int request, int32_t token);

struct mpl_rt_generate_options {
  int max_batch;                /* sequences in flight per replica (0: 16) */
  const int32_t *eos_ids;       /* [n_eos] stop tokens */
  int n_eos;
  mpl_rt_token_fn on_token;     /* or NULL */
  void *user;
  float *prompt_logits;         /* rank 0, one request only: [n_prompt][vocab] or NULL */
};

/* Runs every request: rank 0 passes reqs (tokenized; sampling complete); they are
 * broadcast as token ids, cut into one shard per replica balanced by tokens,
 * generated with continuous batching, and the answers gathered to rank 0 as
 * results [n_reqs] in request order (rank 0 frees them with mpl_rt_results_free).
 * A prompt that does not fit the context is MPL_ERR_RANGE naming the request.
 * Collective on the world. */
enum mpl_status mpl_rt_generate(struct mpl_rt *rt, const struct mpl_request *reqs, int n_reqs,
                                const struct mpl_rt_generate_options *opts,
                                struct mpl_rt_result **results); /* needed on rank 0 */
void mpl_rt_results_free(struct mpl_rt_result *results, int n);

/* Writes logits [n_rows][vocab] as dataset /logits (float32) of a new HDF5 file,
 * through a temporary file renamed at the end, so a failure leaves nothing at path.
 * Errors name the path. Local. */
enum mpl_status mpl_rt_write_logits(const char *path, const float *logits, int n_rows, int vocab);

/* ---- evaluation ---------------------------------------------------------------- */

struct mpl_rt_eval_result {
  int64_t n_tokens;     /* in the text */
  int64_t n_windows;
  int64_t n_predicted;  /* sum over windows of (length - 1) */
  double nll;           /* total negative log-likelihood, nats */
  double perplexity;    /* exp(nll / n_predicted) */
  double seconds;
};
/* Perplexity of tokens [n_tokens] (valid on rank 0) cut into consecutive windows
 * of ctx tokens (the last may be shorter), each from an empty cache; windows are
 * spread over the replicas. Result on rank 0. Collective on the world. */
enum mpl_status mpl_rt_eval(struct mpl_rt *rt, const int32_t *tokens, int64_t n_tokens, int ctx,
                            struct mpl_rt_eval_result *result);
/* The negative log-probability of target under a row of logits [n] (log-softmax
 * in double): log(row_sum_exp(x, n, m)) + m - x[target] with m = row_max; the
 * tensor-parallel path (mpl_rt_step_nll) reduces the same two over the vocabulary
 * slices. row_max of no columns is -1e300. Local. */
double mpl_rt_nll(const float *logits, int n, int32_t target);
double mpl_rt_row_max(const float *x, int n);
double mpl_rt_row_sum_exp(const float *x, int n, double max);

/* ---- measurements -------------------------------------------------------------- */

/* This process's peak resident memory (VmHWM of /proc/self/status), 0 when
 * unknown. Local. */
size_t mpl_rt_peak_rss_bytes(void);
/* Mean, sample standard deviation and the q-quantile (0..1, linear between order
 * statistics; sorts a copy) of x [n]. Local. */
double mpl_rt_mean(const double *x, int n);
double mpl_rt_stddev(const double *x, int n);
double mpl_rt_quantile(const double *x, int n, double q);

#endif
