/* io: import of the reference fixtures (values against the safetensors they came
 * from), rectangle reads, the tokenizer text, and every kind of bad input: each
 * must give one message naming the file, tensor or field, and leave no file. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"
#include "mpillm/io.h"
#include "mpl_test.h"

static char path_buf[4096];
static const char *scratch(const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", mpl_test_scratch_dir(), name);
  return path_buf;
}

static bool has_text(const char *needle) {
  bool ok = strstr(mpl_error_message(), needle) != NULL;
  if (!ok) fprintf(stderr, "\n  message lacks '%s': %s\n", needle, mpl_error_message());
  return ok;
}

/* No file in dir starts with prefix (a failed convert leaves nothing). */
static bool nothing_left(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return true;
  struct dirent *e;
  bool clean = true;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) clean = false;
  closedir(d);
  return clean;
}

/* --- the fixtures ---------------------------------------------------------- */

static void check_against_checkpoint(const char *fixture, enum mpl_dtype dtype) {
  char hf[4096], out[4096];
  snprintf(hf, sizeof hf, "%s", mpl_test_source_path(fixture));
  snprintf(out, sizeof out, "%s/conv-%d.h5", mpl_test_scratch_dir(), (int)dtype);
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(hf, out, dtype), MPL_OK);
  struct mpl_model_file *f = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(out, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  struct mpl_model_config cfg;
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &cfg), MPL_OK);
  struct mpl_io__st_set set;
  CU_ASSERT_EQUAL_FATAL(mpl_io__st_open(hf, &set), MPL_OK);
  int n_compared = 0;
  for (int i = 0; i < mpl_io_n_tensors(f); i++) {
    const char *name = mpl_io_tensor_name(f, i);
    const struct mpl_io__st_tensor *t = mpl_io__st_find(&set, name);
    if (!t && strncmp(name, "transformer.", 12) == 0) t = mpl_io__st_find(&set, name + 12);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    struct mpl_tensor_info info;
    CU_ASSERT_EQUAL(mpl_io_tensor_info(f, name, &info), MPL_OK);
    CU_ASSERT_EQUAL(info.n_dims, t->n_dims);
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++) {
      CU_ASSERT_EQUAL(info.shape[d], t->shape[d]);
      n *= (size_t)t->shape[d];
    }
    float *want = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    void *aligned = malloc(t->n_bytes);
    memcpy(aligned, t->data, t->n_bytes);
    mpl_tensor_to_f32(want, aligned, t->dtype == MPL_ST_F32 ? MPL_DTYPE_F32 : t->dtype == MPL_ST_BF16 ? MPL_DTYPE_BF16 : MPL_DTYPE_F16, n);
    if (dtype == MPL_DTYPE_BF16)
      for (size_t j = 0; j < n; j++) want[j] = mpl_bf16_to_f32(mpl_f32_to_bf16(want[j]));
    int64_t rows = t->n_dims == 1 ? 1 : t->shape[0], cols = t->n_dims == 1 ? t->shape[0] : t->shape[1];
    CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 0, rows, 0, cols, MPL_DTYPE_F32, got), MPL_OK);
    CU_ASSERT_EQUAL(memcmp(want, got, n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(mpl_io_verify_tensor(f, name), MPL_OK);
    n_compared++;
    free(want);
    free(got);
    free(aligned);
  }
  CU_ASSERT(n_compared > 5);
  mpl_io__st_close(&set);
  mpl_io_close(f);
  unlink(out);
}

static void test_convert_llama_gqa(void) {
  check_against_checkpoint("tests/fixtures/llama_gqa/hf", MPL_DTYPE_COUNT);
  check_against_checkpoint("tests/fixtures/llama_gqa/hf", MPL_DTYPE_BF16);
}
static void test_convert_qwen2_tied(void) { check_against_checkpoint("tests/fixtures/qwen2_tied/hf", MPL_DTYPE_COUNT); }
static void test_convert_gpt2(void) { check_against_checkpoint("tests/fixtures/gpt2/hf", MPL_DTYPE_COUNT); }
static void test_convert_bf16_sharded(void) {
  check_against_checkpoint("tests/fixtures/import/llama_bf16_sharded/hf", MPL_DTYPE_COUNT);
}
static void test_convert_f16(void) {
  check_against_checkpoint("tests/fixtures/import/llama_f16/hf", MPL_DTYPE_COUNT);
  check_against_checkpoint("tests/fixtures/import/llama_f16/hf", MPL_DTYPE_BF16);
}

static struct mpl_model_file *convert_open(const char *fixture, enum mpl_dtype dtype, const char *name) {
  const char *out = scratch(name);
  char out_copy[4096];
  snprintf(out_copy, sizeof out_copy, "%s", out);
  if (mpl_io_convert(mpl_test_source_path(fixture), out_copy, dtype) != MPL_OK) return NULL;
  struct mpl_model_file *f = NULL;
  mpl_io_open(out_copy, MPI_COMM_SELF, 0, 1, 0, 1, &f);
  return f;
}

static void test_configs(void) {
  struct mpl_model_file *f = convert_open("tests/fixtures/llama_gqa/hf", MPL_DTYPE_COUNT, "cfg-llama.h5");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  struct mpl_model_config c;
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT_EQUAL(c.arch, MPL_ARCH_LLAMA);
  CU_ASSERT(c.vocab_size == 403 && c.hidden_size == 96 && c.intermediate_size == 520 && c.n_layers == 2);
  CU_ASSERT(c.n_heads == 6 && c.n_kv_heads == 2 && c.head_dim == 16 && c.max_position_embeddings == 128);
  CU_ASSERT(c.rope_theta == 10000.0f && fabsf(c.norm_eps - 1e-5f) < 1e-12f);
  CU_ASSERT(!c.tie_word_embeddings && !c.qkv_bias && c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2);
  CU_ASSERT(mpl_io_has_tensor(f, "lm_head.weight"));
  mpl_io_close(f);

  f = convert_open("tests/fixtures/qwen2_tied/hf", MPL_DTYPE_COUNT, "cfg-qwen2.h5");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT_EQUAL(c.arch, MPL_ARCH_QWEN2);
  CU_ASSERT(c.qkv_bias && c.tie_word_embeddings && c.rope_theta == 1e6f && fabsf(c.norm_eps - 1e-6f) < 1e-12f);
  CU_ASSERT(c.head_dim == 16 && c.n_kv_heads == 2);
  CU_ASSERT(!mpl_io_has_tensor(f, "lm_head.weight"));
  CU_ASSERT(mpl_io_has_tensor(f, "model.layers.1.self_attn.k_proj.bias"));
  mpl_io_close(f);

  f = convert_open("tests/fixtures/gpt2/hf", MPL_DTYPE_COUNT, "cfg-gpt2.h5");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT_EQUAL(c.arch, MPL_ARCH_GPT2);
  CU_ASSERT(c.hidden_size == 64 && c.intermediate_size == 256 && c.n_heads == 4 && c.n_kv_heads == 4);
  CU_ASSERT(c.head_dim == 16 && c.tie_word_embeddings && c.bos_token_id == 316 && c.eos_token_ids[0] == 316);
  struct mpl_tensor_info info;
  CU_ASSERT_EQUAL(mpl_io_tensor_info(f, "transformer.h.0.attn.c_attn.weight", &info), MPL_OK);
  CU_ASSERT(info.n_dims == 2 && info.shape[0] == 64 && info.shape[1] == 192); /* Conv1D [in, out] as stored */
  CU_ASSERT(!mpl_io_has_tensor(f, "lm_head.weight"));
  CU_ASSERT_EQUAL(mpl_io_tensor_info(f, "no.such.tensor", &info), MPL_ERR_FORMAT);
  CU_ASSERT(has_text("no.such.tensor"));
  mpl_io_close(f);

  f = convert_open("tests/fixtures/import/llama_f16/hf", MPL_DTYPE_COUNT, "cfg-f16.h5");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT(c.rope_theta == 50000.0f && c.head_dim == 8);
  CU_ASSERT_EQUAL(mpl_io_tensor_info(f, "model.embed_tokens.weight", &info), MPL_OK);
  CU_ASSERT_EQUAL(info.dtype, MPL_DTYPE_F32); /* f16 is stored as f32 */
  mpl_io_close(f);
}

static void test_rects(void) {
  struct mpl_model_file *f = convert_open("tests/fixtures/llama_gqa/hf", MPL_DTYPE_COUNT, "rect.h5");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  const char *name = "model.layers.1.mlp.down_proj.weight"; /* [96, 520] */
  float *full = malloc(96 * 520 * sizeof(float)), *part = malloc(96 * 520 * sizeof(float));
  CU_ASSERT_EQUAL_FATAL(mpl_io_read_rect(f, name, 0, 96, 0, 520, MPL_DTYPE_F32, full), MPL_OK);
  /* an uneven column slice, as a row-parallel rank reads it */
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 0, 96, 174, 173, MPL_DTYPE_F32, part), MPL_OK);
  int bad = 0;
  for (int r = 0; r < 96; r++)
    for (int c = 0; c < 173; c++) bad += part[r * 173 + c] != full[r * 520 + 174 + c];
  CU_ASSERT_EQUAL(bad, 0);
  /* a row slice in bf16 */
  uint16_t *half = (uint16_t *)part;
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 33, 31, 0, 520, MPL_DTYPE_BF16, half), MPL_OK);
  bad = 0;
  for (int r = 0; r < 31; r++)
    for (int c = 0; c < 520; c++) bad += half[r * 520 + c] != mpl_f32_to_bf16(full[(33 + r) * 520 + c]);
  CU_ASSERT_EQUAL(bad, 0);
  /* a 1-D tensor is one row */
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, "model.norm.weight", 0, 1, 10, 20, MPL_DTYPE_F32, part), MPL_OK);
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, "model.norm.weight", 0, 0, 0, 0, MPL_DTYPE_F32, NULL), MPL_OK);
  /* outside the tensor */
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 90, 10, 0, 520, MPL_DTYPE_F32, part), MPL_ERR_RANGE);
  CU_ASSERT(has_text(name));
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, "missing.weight", 0, 1, 0, 1, MPL_DTYPE_F32, part), MPL_ERR_FORMAT);
  CU_ASSERT(has_text("missing.weight"));
  free(full);
  free(part);
  mpl_io_close(f);
}

static void test_text(void) {
  struct mpl_model_file *f = convert_open("tests/fixtures/qwen2_tied/hf", MPL_DTYPE_COUNT, "text.h5");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  char *text = NULL, *want = NULL;
  CU_ASSERT_EQUAL(mpl_io_read_text(f, "tokenizer.json", &text), MPL_OK);
  CU_ASSERT_EQUAL(mpl_io__slurp(mpl_test_source_path("tests/fixtures/qwen2_tied/hf/tokenizer.json"), false, &want, NULL),
                  MPL_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_STRING_EQUAL(text, want);
  free(text);
  free(want);
  CU_ASSERT_EQUAL(mpl_io_read_text(f, "special_tokens_map.json", &text), MPL_OK);
  CU_ASSERT_PTR_NULL(text);
  mpl_io_close(f);
}

/* --- bad input: a tiny LLaMA written here, then spoilt one way per case ------ */

enum spoil { SPOIL_NONE, SPOIL_TRUNCATE, SPOIL_OFFSET_PAST_END, SPOIL_SIZE_MISMATCH, SPOIL_UNKNOWN_DTYPE,
             SPOIL_F64, SPOIL_WRONG_SHAPE, SPOIL_DROP };

static const struct {
  const char *name;
  int rows, cols;
} tiny[] = {
    {"model.embed_tokens.weight", 16, 8},
    {"model.layers.0.input_layernorm.weight", 8, 0},
    {"model.layers.0.self_attn.q_proj.weight", 8, 8},
    {"model.layers.0.self_attn.k_proj.weight", 4, 8},
    {"model.layers.0.self_attn.v_proj.weight", 4, 8},
    {"model.layers.0.self_attn.o_proj.weight", 8, 8},
    {"model.layers.0.post_attention_layernorm.weight", 8, 0},
    {"model.layers.0.mlp.gate_proj.weight", 12, 8},
    {"model.layers.0.mlp.up_proj.weight", 12, 8},
    {"model.layers.0.mlp.down_proj.weight", 8, 12},
    {"model.norm.weight", 8, 0},
    {"lm_head.weight", 16, 8},
};
#define N_TINY ((int)(sizeof tiny / sizeof tiny[0]))

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

/* Writes DIR/config.json (model_type, plus extra JSON fields) and DIR/model.safetensors. */
static bool tiny_no_special; /* leave bos/eos out of config.json */

static const char *make_tiny(const char *dir_name, const char *model_type, const char *extra, enum spoil spoil) {
  static char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", mpl_test_scratch_dir(), dir_name);
  mkdir(dir, 0755);
  char path[4200], config[2048];
  snprintf(config, sizeof config,
           "{\"model_type\": \"%s\", \"vocab_size\": 16, \"hidden_size\": 8, \"intermediate_size\": 12,"
           " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
           " \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000.0,"
           "%s%s%s}",
           model_type, tiny_no_special ? "" : " \"bos_token_id\": 1, \"eos_token_id\": [2, 3]",
           extra[0] && !tiny_no_special ? ", " : "", extra);
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_file(path, config, strlen(config));

  cJSON *header = cJSON_CreateObject();
  size_t offset = 0;
  for (int i = 0; i < N_TINY; i++) {
    if (spoil == SPOIL_DROP && i == 5) continue;
    int rows = tiny[i].rows, cols = tiny[i].cols;
    if (spoil == SPOIL_WRONG_SHAPE && i == 3) rows = 6;
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1), bytes = 4 * n;
    const char *dtype = "F32";
    if (spoil == SPOIL_UNKNOWN_DTYPE && i == 1) dtype = "F7";
    if (spoil == SPOIL_F64 && i == 1) dtype = "F64", bytes = 8 * n;
    cJSON *t = cJSON_AddObjectToObject(header, tiny[i].name);
    cJSON_AddStringToObject(t, "dtype", dtype);
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(spoil == SPOIL_SIZE_MISMATCH && i == 2 ? rows + 1 : rows));
    if (cols) cJSON_AddItemToArray(shape, cJSON_CreateNumber(cols));
    cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
    size_t end = offset + bytes;
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(spoil == SPOIL_OFFSET_PAST_END && i == N_TINY - 1 ? end + 4096 : end)));
    offset = end;
  }
  char *text = cJSON_PrintUnformatted(header);
  cJSON_Delete(header);
  size_t header_bytes = strlen(text), total = 8 + header_bytes + offset;
  unsigned char *file = calloc(1, total);
  for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)header_bytes >> (8 * i));
  memcpy(file + 8, text, header_bytes);
  float *data = (float *)(file + 8 + header_bytes);
  for (size_t i = 0; i < offset / 4; i++) {
    float v = 0.01f * (float)((i * 37) % 101) - 0.5f;
    memcpy(&data[i], &v, 4); /* the data may be unaligned */
  }
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  write_file(path, file, spoil == SPOIL_TRUNCATE ? total - 100 : total);
  free(file);
  cJSON_free(text);
  return dir;
}

/* Converting dir must fail with status, a message containing each of the needles,
 * and leave no output behind. */
static void expect_refused(const char *dir, enum mpl_status status, const char *n1, const char *n2) {
  char out[4096];
  snprintf(out, sizeof out, "%s/refused.h5", mpl_test_scratch_dir());
  enum mpl_status st = mpl_io_convert(dir, out, MPL_DTYPE_COUNT);
  CU_ASSERT_EQUAL(st, status);
  if (st != status) fprintf(stderr, "\n  status %d, message: %s\n", (int)st, mpl_error_message());
  if (n1) CU_ASSERT(has_text(n1));
  if (n2) CU_ASSERT(has_text(n2));
  CU_ASSERT(nothing_left(mpl_test_scratch_dir(), "refused.h5"));
}

static void test_tiny_ok(void) {
  const char *dir = make_tiny("ok", "mistral", "\"sliding_window\": null", SPOIL_NONE);
  char out[4096];
  snprintf(out, sizeof out, "%s/tiny.h5", mpl_test_scratch_dir());
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(dir, out, MPL_DTYPE_BF16), MPL_OK);
  struct mpl_model_file *f = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(out, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  struct mpl_model_config c;
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT(c.arch == MPL_ARCH_LLAMA && c.n_eos == 2 && c.eos_token_ids[1] == 3 && c.head_dim == 4);
  mpl_io_close(f);
}

static void test_missing_files(void) {
  expect_refused(scratch("no-such-dir"), MPL_ERR_IO, "no-such-dir", NULL);
  const char *dir = make_tiny("noconfig", "llama", "", SPOIL_NONE);
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  unlink(path);
  expect_refused(dir, MPL_ERR_IO, "config.json", NULL);
  dir = make_tiny("noweights", "llama", "", SPOIL_NONE);
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  unlink(path);
  expect_refused(dir, MPL_ERR_IO, "model.safetensors", NULL);
  expect_refused(make_tiny("drop", "llama", "", SPOIL_DROP), MPL_ERR_FORMAT, "model.layers.0.self_attn.o_proj.weight",
                 "missing");
}

static void test_lying_safetensors(void) {
  expect_refused(make_tiny("trunc", "llama", "", SPOIL_TRUNCATE), MPL_ERR_FORMAT, "model.safetensors", "lm_head.weight");
  expect_refused(make_tiny("past", "llama", "", SPOIL_OFFSET_PAST_END), MPL_ERR_FORMAT, "lm_head.weight",
                 "data_offsets");
  expect_refused(make_tiny("size", "llama", "", SPOIL_SIZE_MISMATCH), MPL_ERR_FORMAT,
                 "model.layers.0.self_attn.q_proj.weight", "shape");
  expect_refused(make_tiny("dtype", "llama", "", SPOIL_UNKNOWN_DTYPE), MPL_ERR_FORMAT, "F7",
                 "model.layers.0.input_layernorm.weight");
  expect_refused(make_tiny("f64", "llama", "", SPOIL_F64), MPL_ERR_UNSUPPORTED, "F64",
                 "model.layers.0.input_layernorm.weight");
  expect_refused(make_tiny("shape", "llama", "", SPOIL_WRONG_SHAPE), MPL_ERR_FORMAT,
                 "model.layers.0.self_attn.k_proj.weight", "[6, 8]");
  CU_ASSERT(has_text("[4, 8]"));
}

static void test_unsupported_config(void) {
  expect_refused(make_tiny("bert", "bert", "", SPOIL_NONE), MPL_ERR_UNSUPPORTED, "model_type", "bert");
  expect_refused(make_tiny("scaling", "llama", "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}",
                           SPOIL_NONE),
                 MPL_ERR_UNSUPPORTED, "rope_scaling", "llama3");
  expect_refused(make_tiny("params", "llama", "\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 1.0}",
                           SPOIL_NONE),
                 MPL_ERR_UNSUPPORTED, "rope_parameters.rope_type", "yarn");
  expect_refused(make_tiny("sliding", "mistral", "\"sliding_window\": 16", SPOIL_NONE), MPL_ERR_UNSUPPORTED,
                 "sliding_window", NULL);
  expect_refused(make_tiny("qwsliding", "qwen2", "\"use_sliding_window\": true", SPOIL_NONE), MPL_ERR_UNSUPPORTED,
                 "use_sliding_window", NULL);
  expect_refused(make_tiny("moe", "mistral", "\"num_local_experts\": 8", SPOIL_NONE), MPL_ERR_UNSUPPORTED,
                 "num_local_experts", NULL);
  expect_refused(make_tiny("tdtype", "llama", "\"torch_dtype\": \"float8_e4m3fn\"", SPOIL_NONE), MPL_ERR_UNSUPPORTED,
                 "torch_dtype", "float8_e4m3fn");
  expect_refused(make_tiny("act", "llama", "\"hidden_act\": \"gelu\"", SPOIL_NONE), MPL_ERR_UNSUPPORTED,
                 "hidden_act", NULL);
  expect_refused(make_tiny("badheads", "llama", "\"head_dim\": 0", SPOIL_NONE), MPL_ERR_FORMAT, "head_dim", NULL);
}

/* bos/eos: generation_config.json first, then config.json, then the token strings
 * of tokenizer_config.json looked up in tokenizer.json */
static void test_special_tokens(void) {
  char path[4200], out[4096];
  snprintf(out, sizeof out, "%s/special.h5", mpl_test_scratch_dir());
  struct mpl_model_config c;
  struct mpl_model_file *f = NULL;
  tiny_no_special = true;
  const char *dir = make_tiny("special", "llama", "\"pad_token_id\": null", SPOIL_NONE);
  tiny_no_special = false;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  const char *tok = "{\"added_tokens\": [{\"id\": 3, \"content\": \"</s>\"}], \"model\": {\"vocab\": {\"<s>\": 1}}}";
  write_file(path, tok, strlen(tok));
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  const char *tc = "{\"bos_token\": \"<s>\", \"eos_token\": {\"content\": \"</s>\"}}";
  write_file(path, tc, strlen(tc));
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(dir, out, MPL_DTYPE_COUNT), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(out, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 3);
  mpl_io_close(f);
  unlink(out);
  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  const char *gc = "{\"bos_token_id\": 0, \"eos_token_id\": [2, 5]}";
  write_file(path, gc, strlen(gc));
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(dir, out, MPL_DTYPE_COUNT), MPL_OK);
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(out, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  CU_ASSERT_EQUAL(mpl_io_read_config(f, &c), MPL_OK);
  CU_ASSERT(c.bos_token_id == 0 && c.n_eos == 2 && c.eos_token_ids[0] == 2 && c.eos_token_ids[1] == 5);
  char *text = NULL;
  CU_ASSERT_EQUAL(mpl_io_read_text(f, "generation_config.json", &text), MPL_OK);
  CU_ASSERT(text && strcmp(text, gc) == 0);
  free(text);
  mpl_io_close(f);
}

/* The hub's gpt2 names tensors without "transformer.": the file adds it. */
static void test_gpt2_unprefixed(void) {
  struct mpl_io__st_set set;
  CU_ASSERT_EQUAL_FATAL(mpl_io__st_open(mpl_test_source_path("tests/fixtures/gpt2/hf"), &set), MPL_OK);
  char dir[4096], path[4200], out[4096];
  snprintf(dir, sizeof dir, "%s/gpt2-hub", mpl_test_scratch_dir());
  mkdir(dir, 0755);
  cJSON *header = cJSON_CreateObject();
  size_t offset = 0;
  for (int i = 0; i < set.n_tensors; i++) {
    const struct mpl_io__st_tensor *t = &set.tensors[i];
    const char *name = strncmp(t->name, "transformer.", 12) == 0 ? t->name + 12 : t->name;
    cJSON *e = cJSON_AddObjectToObject(header, name);
    cJSON_AddStringToObject(e, "dtype", t->dtype_name);
    cJSON *shape = cJSON_AddArrayToObject(e, "shape");
    for (int d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
    cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offset + t->n_bytes)));
    offset += t->n_bytes;
  }
  char *text = cJSON_PrintUnformatted(header);
  cJSON_Delete(header);
  size_t hb = strlen(text);
  unsigned char *file = malloc(8 + hb + offset);
  for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)hb >> (8 * i));
  memcpy(file + 8, text, hb);
  offset = 0;
  for (int i = 0; i < set.n_tensors; i++) {
    memcpy(file + 8 + hb + offset, set.tensors[i].data, set.tensors[i].n_bytes);
    offset += set.tensors[i].n_bytes;
  }
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  write_file(path, file, 8 + hb + offset);
  free(file);
  cJSON_free(text);
  char *config = NULL;
  CU_ASSERT_EQUAL(mpl_io__slurp(mpl_test_source_path("tests/fixtures/gpt2/hf/config.json"), false, &config, NULL), MPL_OK);
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_file(path, config, strlen(config));
  free(config);
  snprintf(out, sizeof out, "%s/gpt2-hub.h5", mpl_test_scratch_dir());
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(dir, out, MPL_DTYPE_COUNT), MPL_OK);
  struct mpl_model_file *f = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(out, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  CU_ASSERT(mpl_io_has_tensor(f, "transformer.h.1.mlp.c_fc.weight") && !mpl_io_has_tensor(f, "h.1.mlp.c_fc.weight"));
  const struct mpl_io__st_tensor *t = mpl_io__st_find(&set, "transformer.wpe.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  float *got = malloc(t->n_bytes);
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, "transformer.wpe.weight", 0, t->shape[0], 0, t->shape[1], MPL_DTYPE_F32, got), MPL_OK);
  CU_ASSERT(memcmp(got, t->data, t->n_bytes) == 0);
  free(got);
  mpl_io_close(f);
  mpl_io__st_close(&set);
}

/* --- bad model files -------------------------------------------------------- */

static void test_bad_h5(void) {
  struct mpl_model_file *f = NULL;
  const char *junk = scratch("junk.h5");
  char junk_path[4096];
  snprintf(junk_path, sizeof junk_path, "%s", junk);
  write_file(junk_path, "this is not HDF5\n", 17);
  CU_ASSERT_EQUAL(mpl_io_open(junk_path, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_ERR_FORMAT);
  CU_ASSERT(has_text("junk.h5") && has_text("not an HDF5 file"));
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_EQUAL(mpl_io_open(scratch("absent.h5"), MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_ERR_IO);
  CU_ASSERT(has_text("absent.h5"));

  /* truncated */
  char good[4096], cut[4096];
  snprintf(good, sizeof good, "%s/good.h5", mpl_test_scratch_dir());
  snprintf(cut, sizeof cut, "%s/cut.h5", mpl_test_scratch_dir());
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(mpl_test_source_path("tests/fixtures/gpt2/hf"), good, MPL_DTYPE_COUNT), MPL_OK);
  char *bytes = NULL;
  size_t n = 0;
  CU_ASSERT_EQUAL_FATAL(mpl_io__slurp(good, false, &bytes, &n), MPL_OK);
  write_file(cut, bytes, n / 2);
  CU_ASSERT_NOT_EQUAL(mpl_io_open(cut, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  CU_ASSERT(has_text("cut.h5") && has_text("truncated"));
  free(bytes);
}

/* Flips one byte inside a tensor's first chunk: Fletcher32 must catch it on read. */
static void test_flipped_bytes(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/flip.h5", mpl_test_scratch_dir());
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(mpl_test_source_path("tests/fixtures/llama_gqa/hf"), path, MPL_DTYPE_COUNT),
                        MPL_OK);
  const char *name = "model.layers.0.mlp.up_proj.weight";
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  char dset[256];
  snprintf(dset, sizeof dset, "tensors/%s", name);
  hid_t d = H5Dopen2(file, dset, H5P_DEFAULT);
  hsize_t coord[2] = {0, 0}, size = 0;
  haddr_t addr = 0;
  unsigned mask = 0;
  CU_ASSERT_FATAL(H5Dget_chunk_info_by_coord(d, coord, &mask, &addr, &size) >= 0);
  H5Dclose(d);
  H5Fclose(file);
  FILE *fp = fopen(path, "r+b");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
  fseek(fp, (long)(addr + 100), SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, (long)(addr + 100), SEEK_SET);
  fputc(c ^ 0x10, fp);
  fclose(fp);

  struct mpl_model_file *f = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(path, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  float *buf = malloc(520 * 96 * sizeof(float));
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 0, 520, 0, 96, MPL_DTYPE_F32, buf), MPL_ERR_CHECKSUM);
  CU_ASSERT(has_text(name) && has_text("flip.h5"));
  CU_ASSERT_EQUAL(mpl_io_verify_tensor(f, name), MPL_ERR_CHECKSUM);
  CU_ASSERT_EQUAL(mpl_io_verify_tensor(f, "model.layers.0.mlp.gate_proj.weight"), MPL_OK);
  free(buf);
  mpl_io_close(f);
}

/* A stored crc32 that does not match the data (Fletcher32 intact): caught on a whole read. */
static void test_crc_mismatch(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/crc.h5", mpl_test_scratch_dir());
  CU_ASSERT_EQUAL_FATAL(mpl_io_convert(mpl_test_source_path("tests/fixtures/gpt2/hf"), path, MPL_DTYPE_COUNT), MPL_OK);
  const char *name = "transformer.h.0.mlp.c_fc.weight"; /* [64, 256] */
  hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  char dset[256];
  snprintf(dset, sizeof dset, "tensors/%s", name);
  hid_t d = H5Dopen2(file, dset, H5P_DEFAULT);
  CU_ASSERT_EQUAL(mpl_io__attr_write_i64(d, "crc32", 12345), MPL_OK);
  H5Dclose(d);
  H5Fclose(file);
  struct mpl_model_file *f = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_io_open(path, MPI_COMM_SELF, 0, 1, 0, 1, &f), MPL_OK);
  float *buf = malloc(64 * 256 * sizeof(float));
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 0, 32, 0, 256, MPL_DTYPE_F32, buf), MPL_OK);
  CU_ASSERT_EQUAL(mpl_io_read_rect(f, name, 0, 64, 0, 256, MPL_DTYPE_F32, buf), MPL_ERR_CHECKSUM);
  CU_ASSERT(has_text(name) && has_text("crc32"));
  CU_ASSERT_EQUAL(mpl_io_verify_tensor(f, name), MPL_ERR_CHECKSUM);
  free(buf);
  mpl_io_close(f);
}

MPL_TEST_SUITE(io, MPL_TEST(test_convert_llama_gqa), MPL_TEST(test_convert_qwen2_tied), MPL_TEST(test_convert_gpt2),
               MPL_TEST(test_convert_bf16_sharded), MPL_TEST(test_convert_f16), MPL_TEST(test_configs),
               MPL_TEST(test_rects), MPL_TEST(test_text), MPL_TEST(test_tiny_ok), MPL_TEST(test_special_tokens), MPL_TEST(test_gpt2_unprefixed), MPL_TEST(test_missing_files),
               MPL_TEST(test_lying_safetensors), MPL_TEST(test_unsupported_config), MPL_TEST(test_bad_h5),
               MPL_TEST(test_flipped_bytes), MPL_TEST(test_crc_mismatch))
