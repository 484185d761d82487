/* Tokenizer: every case of every fixture gives transformers' ids (with and without
 * special tokens) and its decode; the stream decoder reassembles characters split
 * over byte tokens; bad tokenizer files give messages naming the file and field. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpillm/tokenizer.h"
#include "mpl_test.h"
#include "tokenizer/tok_internal.h"

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

/* the tokenizer of a fixture directory (tokenizer.json + configs beside it) */
static struct mpl_tokenizer *load_dir(const char *dir) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  char *json = read_text(path);
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  char *cfg = read_text(path);
  snprintf(path, sizeof path, "%s/generation_config.json", dir);
  char *gen = read_text(path);
  struct mpl_tokenizer *tok = NULL;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  enum mpl_status st = json ? mpl_tok_create(json, cfg, gen, path, &tok) : MPL_ERR_IO;
  if (st != MPL_OK) fprintf(stderr, "\n%s: %s\n", dir, json ? mpl_error_message() : "missing tokenizer.json");
  free(json);
  free(cfg);
  free(gen);
  return tok;
}

static bool ids_equal(const cJSON *want, const int32_t *ids, int n) {
  if (!cJSON_IsArray(want) || cJSON_GetArraySize(want) != n) return false;
  for (int i = 0; i < n; i++)
    if (cJSON_GetArrayItem(want, i)->valueint != ids[i]) return false;
  return true;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
  fprintf(stderr, "  %s:", what);
  for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", (int)ids[i]);
  fprintf(stderr, "\n");
}

/* fixtures are relative to the source tree; absolute paths are taken as they are */
static const char *fixture_path(const char *p) { return p[0] == '/' ? p : mpl_test_source_path(p); }

/* every case of <case_dir>/tokenizer_cases.json against the tokenizer in tok_dir */
static void check_cases(const char *tok_dir, const char *case_dir) {
  char path[1024];
  struct mpl_tokenizer *tok = load_dir(fixture_path(tok_dir));
  CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
  snprintf(path, sizeof path, "%s/tokenizer_cases.json", case_dir);
  char *text = read_text(fixture_path(path));
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  cJSON *cases = cJSON_Parse(text);
  free(text);
  CU_ASSERT_FATAL(cJSON_GetArraySize(cases) > 0);
  int n_bad = 0, k = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, cases) {
    const char *s = cJSON_GetObjectItem(c, "text")->valuestring;
    const char *decoded = cJSON_GetStringValue(cJSON_GetObjectItem(c, "decoded"));
    for (int special = 0; special < 2; special++) {
      int32_t *ids = NULL;
      int n = 0;
      enum mpl_status st = mpl_tok_encode(tok, s, strlen(s), special, &ids, &n);
      const cJSON *want = cJSON_GetObjectItem(c, special ? "ids_special" : "ids");
      if (st != MPL_OK || !ids_equal(want, ids, n)) {
        if (n_bad++ < 5) {
          fprintf(stderr, "\n%s case %d (special %d) text \"%s\": %s\n", tok_dir, k, special, s,
                  st == MPL_OK ? "ids differ" : mpl_error_message());
          print_ids("got ", ids, n);
          char *w = cJSON_PrintUnformatted(want);
          fprintf(stderr, "  want: %.200s\n", w);
          free(w);
        }
        free(ids);
        continue;
      }
      /* decode as transformers does; the stream gives the same text piece by piece */
      char *out = NULL;
      if (!special && decoded) {
        st = mpl_tok_decode(tok, ids, n, false, &out);
        if (st != MPL_OK || strcmp(out, decoded) != 0) {
          if (n_bad++ < 5) fprintf(stderr, "\n%s case %d: decode gives \"%s\", want \"%s\"\n", tok_dir, k,
                                   out ? out : mpl_error_message(), decoded);
        }
        free(out);
        out = NULL;
      }
      if (special) {
        struct mpl_tok_stream *ts = NULL;
        char streamed[16384] = "";
        const char *piece;
        CU_ASSERT_EQUAL_FATAL(mpl_tok_stream_create(tok, &ts), MPL_OK);
        for (int i = 0; i < n; i++) {
          CU_ASSERT_EQUAL(mpl_tok_stream_push(ts, ids[i], &piece), MPL_OK);
          strncat(streamed, piece, sizeof streamed - strlen(streamed) - 1);
        }
        CU_ASSERT_EQUAL(mpl_tok_stream_flush(ts, &piece), MPL_OK);
        strncat(streamed, piece, sizeof streamed - strlen(streamed) - 1);
        mpl_tok_stream_destroy(ts);
        CU_ASSERT_EQUAL(mpl_tok_decode(tok, ids, n, true, &out), MPL_OK);
        if (out && strcmp(out, streamed) != 0 && n_bad++ < 5)
          fprintf(stderr, "\n%s case %d: stream gives \"%s\", decode \"%s\"\n", tok_dir, k, streamed, out);
        free(out);
      }
      free(ids);
    }
    k++;
  }
  if (n_bad) fprintf(stderr, "%s: %d mismatches over %d cases\n", tok_dir, n_bad, k);
  CU_ASSERT_EQUAL(n_bad, 0);
  cJSON_Delete(cases);
  mpl_tok_destroy(tok);
}

static void test_cases_llama_gqa(void) { check_cases("tests/fixtures/llama_gqa/hf", "tests/fixtures/llama_gqa"); }
static void test_cases_qwen2_tied(void) { check_cases("tests/fixtures/qwen2_tied/hf", "tests/fixtures/qwen2_tied"); }
static void test_cases_gpt2(void) { check_cases("tests/fixtures/gpt2/hf", "tests/fixtures/gpt2"); }
static void test_cases_llama3(void) { check_cases("tests/fixtures/tokenizers/llama3", "tests/fixtures/tokenizers/llama3"); }
static void test_cases_metaspace(void) {
  check_cases("tests/fixtures/tokenizers/metaspace", "tests/fixtures/tokenizers/metaspace");
}

/* development aid: MPL_TOK_EXTRA_DIRS="dir1:dir2" checks more tokenizer directories
 * (each with its tokenizer_cases.json) */
static void test_cases_extra_dirs(void) {
  const char *env = getenv("MPL_TOK_EXTRA_DIRS");
  if (!env) return;
  char *dirs = strdup(env), *save = NULL;
  for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) check_cases(d, d);
  free(dirs);
}

static void test_special_ids(void) {
  struct mpl_tokenizer *tok = load_dir(mpl_test_source_path("tests/fixtures/llama_gqa/hf"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
  CU_ASSERT_EQUAL(mpl_tok_vocab_size(tok), 403);
  CU_ASSERT_EQUAL(mpl_tok_bos_id(tok), 1);
  CU_ASSERT(mpl_tok_is_eos(tok, 2));
  CU_ASSERT(!mpl_tok_is_eos(tok, 1));
  CU_ASSERT(mpl_tok_is_special(tok, 1));
  CU_ASSERT(!mpl_tok_is_special(tok, 300));
  mpl_tok_destroy(tok);
  tok = load_dir(mpl_test_source_path("tests/fixtures/gpt2/hf"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
  CU_ASSERT(mpl_tok_is_eos(tok, 316));
  mpl_tok_destroy(tok);
}

/* an emoji through byte fallback is 4 tokens <0xF0><0x9F>..: nothing comes out of
 * the stream until the last one */
static void test_stream_holds_split_character(void) {
  struct mpl_tokenizer *tok = load_dir(mpl_test_source_path("tests/fixtures/llama_gqa/hf"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
  const char *text = "a \xF0\x9F\xA6\x80 b"; /* U+1F980 */
  int32_t *ids = NULL;
  int n = 0;
  CU_ASSERT_EQUAL_FATAL(mpl_tok_encode(tok, text, strlen(text), false, &ids, &n), MPL_OK);
  struct mpl_tok_stream *ts = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_tok_stream_create(tok, &ts), MPL_OK);
  char all[256] = "";
  int n_empty_in_a_row = 0, max_empty = 0;
  const char *piece;
  for (int i = 0; i < n; i++) {
    CU_ASSERT_EQUAL(mpl_tok_stream_push(ts, ids[i], &piece), MPL_OK);
    /* whatever comes out is whole characters */
    CU_ASSERT(strstr(piece, "\xEF\xBF\xBD") == NULL);
    size_t len = strlen(piece);
    if (strstr(piece, "\xF0\x9F\xA6\x80")) CU_ASSERT(len >= 4 && strcmp(piece + len - 4, "\xF0\x9F\xA6\x80") == 0);
    n_empty_in_a_row = piece[0] ? 0 : n_empty_in_a_row + 1;
    if (n_empty_in_a_row > max_empty) max_empty = n_empty_in_a_row;
    strcat(all, piece);
  }
  CU_ASSERT_EQUAL(mpl_tok_stream_flush(ts, &piece), MPL_OK);
  strcat(all, piece);
  CU_ASSERT_STRING_EQUAL(all, text);
  CU_ASSERT(max_empty >= 3); /* the first three bytes of the emoji were held back */
  /* a lone lead byte comes out as U+FFFD at the flush */
  int32_t lead = -1;
  for (int i = 0; i < n; i++)
    if (ids[i] == 0xF0 + 3) lead = ids[i];
  CU_ASSERT_EQUAL_FATAL(lead, 0xF0 + 3);
  CU_ASSERT_EQUAL(mpl_tok_stream_push(ts, lead, &piece), MPL_OK);
  CU_ASSERT_STRING_EQUAL(piece, "");
  CU_ASSERT_EQUAL(mpl_tok_stream_flush(ts, &piece), MPL_OK);
  CU_ASSERT_STRING_EQUAL(piece, "\xEF\xBF\xBD");
  mpl_tok_stream_destroy(ts);
  free(ids);
  mpl_tok_destroy(tok);
}

/* bad files: each message names the source and the field */
static void expect_error(const char *json, enum mpl_status want, const char *field) {
  struct mpl_tokenizer *tok = NULL;
  mpl_error_clear();
  enum mpl_status st = mpl_tok_create(json, NULL, NULL, "bad/tokenizer.json", &tok);
  CU_ASSERT_EQUAL(st, want);
  CU_ASSERT_PTR_NULL(tok);
  const char *msg = mpl_error_message();
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "bad/tokenizer.json"));
  if (field) CU_ASSERT_PTR_NOT_NULL(strstr(msg, field));
  if (st != want || !strstr(msg, "bad/tokenizer.json") || (field && !strstr(msg, field)))
    fprintf(stderr, "\nmessage: %s\n", msg);
  mpl_tok_destroy(tok);
}

#define MODEL_OK "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

static void test_bad_files(void) {
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {", MPL_ERR_FORMAT, "not valid JSON");
  expect_error("", MPL_ERR_FORMAT, "not valid JSON");
  expect_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", MPL_ERR_UNSUPPORTED,
               "model.type \"WordPiece\"");
  expect_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", MPL_ERR_UNSUPPORTED,
               "model.type \"Unigram\"");
  expect_error("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", MPL_ERR_FORMAT, "model.vocab");
  expect_error("{\"added_tokens\": []}", MPL_ERR_FORMAT, "\"model\" is missing");
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a c\"]}}", MPL_ERR_FORMAT,
               "model.merges[0]");
  expect_error("{" MODEL_OK ", \"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}}",
               MPL_ERR_UNSUPPORTED, "normalizer.type \"Precompiled\"");
  expect_error("{" MODEL_OK ", \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, "
               "{\"type\": \"Lowercase\"}]}}",
               MPL_ERR_UNSUPPORTED, "normalizer.normalizers[1].type \"Lowercase\"");
  expect_error("{" MODEL_OK ", \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", MPL_ERR_UNSUPPORTED,
               "pre_tokenizer.type \"Whitespace\"");
  expect_error("{" MODEL_OK ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
               "\"behavior\": \"Isolated\"}}",
               MPL_ERR_UNSUPPORTED, "pre_tokenizer.pattern");
  expect_error("{" MODEL_OK ", \"decoder\": {\"type\": \"WordPiece\"}}", MPL_ERR_UNSUPPORTED,
               "decoder.type \"WordPiece\"");
  expect_error("{" MODEL_OK ", \"post_processor\": {\"type\": \"Unknown\"}}", MPL_ERR_UNSUPPORTED,
               "post_processor.type \"Unknown\"");
}

/* transformers 5 builds a LlamaTokenizer's pipeline itself (Metaspace "first", no
 * legacy normalizer): the llama_gqa tokenizer.json declared as LlamaTokenizer encodes
 * as transformers 5.24 did (ids recorded from it), unlike the same file as
 * TokenizersBackend */
static void test_llama_tokenizer_class(void) {
  char *json = read_text(mpl_test_source_path("tests/fixtures/llama_gqa/hf/tokenizer.json"));
  CU_ASSERT_PTR_NOT_NULL_FATAL(json);
  const char *cfg = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\", "
                    "\"tokenizer_class\": \"LlamaTokenizer\"}";
  struct mpl_tokenizer *tok = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_tok_create(json, cfg, NULL, "llama_gqa as LlamaTokenizer", &tok), MPL_OK);
  struct {
    const char *text;
    int32_t ids[12];
    int n;
    const char *decoded;
  } cases[] = {
      {"  two spaces", {1, 317, 319, 311, 304, 327, 305, 338, 331}, 9, "<s>  two spaces"},
      {"<s>after bos", {1, 1, 290, 295, 308, 330, 342, 304, 307}, 9, "<s><s>after bos"},
      {"a  b", {1, 321, 317, 342}, 4, "<s> a  b"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int32_t *ids = NULL;
    int n = 0;
    char *text = NULL;
    CU_ASSERT_EQUAL(mpl_tok_encode(tok, cases[c].text, strlen(cases[c].text), true, &ids, &n), MPL_OK);
    CU_ASSERT_EQUAL(n, cases[c].n);
    CU_ASSERT(n == cases[c].n && memcmp(ids, cases[c].ids, (size_t)n * sizeof *ids) == 0);
    CU_ASSERT_EQUAL(mpl_tok_decode(tok, ids, n, false, &text), MPL_OK);
    if (text) CU_ASSERT_STRING_EQUAL(text, cases[c].decoded);
    free(text);
    free(ids);
  }
  mpl_tok_destroy(tok);
  free(json);
}

/* long words are cut where no merge crosses: with the cuts switched off the ids
 * are the same (the legacy LLaMA form has no pre-tokenizer, so all the fixture
 * texts joined are one word of several KB: CJK and emoji through byte fallback) */
static void test_long_word_cuts_are_exact(void) {
  const char *dirs[] = {"tests/fixtures/llama_gqa", "tests/fixtures/tokenizers/metaspace"};
  for (int d = 0; d < 2; d++) {
    char path[512];
    snprintf(path, sizeof path, "%s%s", dirs[d], d == 0 ? "/hf" : "");
    struct mpl_tokenizer *tok = load_dir(mpl_test_source_path(path));
    struct mpl_tokenizer *plain = load_dir(mpl_test_source_path(path));
    CU_ASSERT_FATAL(tok && plain);
    CU_ASSERT(!tok->no_word_cuts);
    plain->no_word_cuts = true;
    snprintf(path, sizeof path, "%s/tokenizer_cases.json", dirs[d]);
    char *json = read_text(mpl_test_source_path(path));
    cJSON *cases = cJSON_Parse(json);
    CU_ASSERT_FATAL(cJSON_GetArraySize(cases) > 0);
    size_t cap = 1 << 16, len = 0;
    char *text = calloc(1, cap);
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
      const char *t = cJSON_GetObjectItem(c, "text")->valuestring;
      if (len + strlen(t) + 2 < cap && !strstr(t, "<s>") && !strstr(t, "</s>")) {
        strcat(text, t);
        strcat(text, " ");
        len += strlen(t) + 1;
      }
    }
    CU_ASSERT(len > 2000);
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    CU_ASSERT_EQUAL(mpl_tok_encode(tok, text, len, false, &a, &na), MPL_OK);
    CU_ASSERT_EQUAL(mpl_tok_encode(plain, text, len, false, &b, &nb), MPL_OK);
    CU_ASSERT(na > 500 && na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    free(a);
    free(b);
    free(text);
    free(json);
    cJSON_Delete(cases);
    mpl_tok_destroy(tok);
    mpl_tok_destroy(plain);
  }
}

/* the smallest BPE: merges given as pairs, ranks decide the order */
static void test_merge_ranks(void) {
  const char *json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, "
                     "\"bc\": 4, \"abc\": 5}, \"merges\": [[\"b\", \"c\"], [\"a\", \"b\"], [\"a\", \"bc\"]]}}";
  struct mpl_tokenizer *tok = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_tok_create(json, NULL, NULL, "inline", &tok), MPL_OK);
  int32_t *ids = NULL;
  int n = 0;
  CU_ASSERT_EQUAL(mpl_tok_encode(tok, "abcab", 5, true, &ids, &n), MPL_OK);
  CU_ASSERT_EQUAL(n, 2); /* "b c" first, then "a bc" -> abc; then "a b" */
  if (n == 2) {
    CU_ASSERT_EQUAL(ids[0], 5);
    CU_ASSERT_EQUAL(ids[1], 3);
  }
  free(ids);
  /* the older "a b" form of the same merges gives the same ids */
  const char *json2 = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, "
                      "\"bc\": 4, \"abc\": 5}, \"merges\": [\"b c\", \"a b\", \"a bc\"]}}";
  struct mpl_tokenizer *tok2 = NULL;
  CU_ASSERT_EQUAL_FATAL(mpl_tok_create(json2, NULL, NULL, "inline", &tok2), MPL_OK);
  int32_t *ids2 = NULL;
  int n2 = 0;
  CU_ASSERT_EQUAL(mpl_tok_encode(tok2, "abcab", 5, true, &ids2, &n2), MPL_OK);
  CU_ASSERT(n2 == 2 && ids2[0] == 5 && ids2[1] == 3);
  free(ids2);
  mpl_tok_destroy(tok2);
  CU_ASSERT_EQUAL(mpl_tok_encode(tok, "\xFF", 1, false, &ids, &n), MPL_ERR_ARG);
  char *text = NULL;
  int32_t bad = 6;
  CU_ASSERT_EQUAL(mpl_tok_decode(tok, &bad, 1, false, &text), MPL_ERR_RANGE);
  mpl_tok_destroy(tok);
}

MPL_TEST_SUITE(tokenizer, MPL_TEST(test_cases_llama_gqa), MPL_TEST(test_cases_qwen2_tied),
               MPL_TEST(test_cases_gpt2), MPL_TEST(test_cases_llama3), MPL_TEST(test_cases_metaspace),
               MPL_TEST(test_cases_extra_dirs), MPL_TEST(test_special_ids),
               MPL_TEST(test_stream_holds_split_character), MPL_TEST(test_bad_files),
               MPL_TEST(test_merge_ranks), MPL_TEST(test_llama_tokenizer_class),
               MPL_TEST(test_long_word_cuts_are_exact))
