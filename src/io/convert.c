/* Import of a Hugging Face directory (config.json, safetensors with or without an
 * index, tokenizer files) into one model file. The config is read in both its
 * older form (rope_theta, torch_dtype) and its newer one (rope_parameters, dtype);
 * anything the engine does not implement is refused here, naming the field, and
 * every tensor is checked against the shape the config implies. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io_internal.h"

struct hf_source {
  const char *dir;
  char config_path[4096];
  cJSON *config, *gen_config, *tok_config, *tokenizer;
  char *tokenizer_text, *tok_config_text, *gen_config_text;
  char model_type[32];
  /* GPT-2 checkpoints saved from GPT2LMHeadModel name tensors "transformer.h.0...",
   * those saved from GPT2Model (the hub's gpt2) "h.0...": the file always uses the
   * first form, so that the engine looks for one name */
  bool gpt2_unprefixed;
};

/* --- config.json -------------------------------------------------------------- */

static cJSON *field(cJSON *obj, const char *name) {
  cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsNull(f) ? NULL : f;
}

static enum mpl_status get_int(const struct hf_source *src, const char *name, bool required,
                               int fallback, int *out) {
  cJSON *f = field(src->config, name);
  if (!f) {
    if (required)
      return mpl_error_set(MPL_ERR_FORMAT, "%s: field %s is missing", src->config_path, name);
    *out = fallback;
    return MPL_OK;
  }
  if (!cJSON_IsNumber(f) || f->valuedouble != (double)(int)f->valuedouble)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: field %s is not an integer", src->config_path, name);
  *out = (int)f->valuedouble;
  return MPL_OK;
}

static enum mpl_status get_float(const struct hf_source *src, cJSON *obj, const char *name,
                                 bool required, float fallback, float *out) {
  cJSON *f = field(obj, name);
  if (!f) {
    if (required)
      return mpl_error_set(MPL_ERR_FORMAT, "%s: field %s is missing", src->config_path, name);
    *out = fallback;
    return MPL_OK;
  }
  if (!cJSON_IsNumber(f))
    return mpl_error_set(MPL_ERR_FORMAT, "%s: field %s is not a number", src->config_path, name);
  *out = (float)f->valuedouble;
  return MPL_OK;
}

static bool is_true(cJSON *obj, const char *name) { return cJSON_IsTrue(field(obj, name)); }

/* A token id from an int, or the string of a token looked up in tokenizer.json. */
static int token_id(const struct hf_source *src, cJSON *v) {
  if (cJSON_IsNumber(v)) return (int)v->valuedouble;
  if (cJSON_IsObject(v)) v = field(v, "content"); /* AddedToken form */
  if (!cJSON_IsString(v) || !src->tokenizer) return -1;
  cJSON *added = field(src->tokenizer, "added_tokens"), *t;
  cJSON_ArrayForEach(t, added) {
    cJSON *content = field(t, "content"), *id = field(t, "id");
    if (cJSON_IsString(content) && cJSON_IsNumber(id) && strcmp(content->valuestring, v->valuestring) == 0)
      return (int)id->valuedouble;
  }
  cJSON *vocab = field(field(src->tokenizer, "model"), "vocab");
  cJSON *id = cJSON_IsObject(vocab) ? field(vocab, v->valuestring) : NULL;
  return cJSON_IsNumber(id) ? (int)id->valuedouble : -1;
}

/* bos and eos: generation_config.json first (what transformers' generate uses),
 * then config.json, then tokenizer_config.json's token strings. */
static enum mpl_status read_special_tokens(const struct hf_source *src, struct mpl_model_config *cfg) {
  cJSON *sources[3] = {src->gen_config, src->config, src->tok_config};
  const char *bos_names[3] = {"bos_token_id", "bos_token_id", "bos_token"};
  const char *eos_names[3] = {"eos_token_id", "eos_token_id", "eos_token"};
  cfg->bos_token_id = -1;
  for (int s = 0; s < 3; s++) {
    cJSON *v = sources[s] ? field(sources[s], bos_names[s]) : NULL;
    if (v) {
      cfg->bos_token_id = token_id(src, v);
      break;
    }
  }
  cfg->n_eos = 0;
  for (int s = 0; s < 3 && cfg->n_eos == 0; s++) {
    cJSON *v = sources[s] ? field(sources[s], eos_names[s]) : NULL;
    if (!v) continue;
    if (cJSON_IsArray(v)) {
      cJSON *e;
      cJSON_ArrayForEach(e, v) {
        if (cfg->n_eos == MPL_MAX_EOS)
          return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: more than %d eos_token_id values", src->dir,
                               MPL_MAX_EOS);
        int id = token_id(src, e);
        if (id >= 0) cfg->eos_token_ids[cfg->n_eos++] = id;
      }
    } else {
      int id = token_id(src, v);
      if (id >= 0) cfg->eos_token_ids[cfg->n_eos++] = id;
    }
  }
  return MPL_OK;
}

/* Refuses what the engine does not implement, naming the field. */
static enum mpl_status refuse_unsupported(const struct hf_source *src, const struct mpl_model_config *cfg) {
  cJSON *c = src->config;
  const char *path = src->config_path;
  static const char *const moe_fields[] = {"num_local_experts", "num_experts", "n_routed_experts",
                                           "num_experts_per_tok"};
  for (size_t i = 0; i < sizeof moe_fields / sizeof moe_fields[0]; i++) {
    cJSON *f = field(c, moe_fields[i]);
    if (f && !(cJSON_IsNumber(f) && f->valuedouble == 0))
      return mpl_error_set(MPL_ERR_UNSUPPORTED,
                           "%s: field %s: mixture-of-experts models are not supported", path, moe_fields[i]);
  }
  cJSON *scaling = field(c, "rope_scaling");
  if (scaling) {
    cJSON *type = field(scaling, "rope_type");
    if (!type) type = field(scaling, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "default") != 0)
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field rope_scaling (type %s) is not supported", path,
                           cJSON_IsString(type) ? type->valuestring : "?");
  }
  cJSON *params = field(c, "rope_parameters");
  if (params) {
    cJSON *type = field(params, "rope_type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "default") != 0))
      return mpl_error_set(MPL_ERR_UNSUPPORTED,
                           "%s: field rope_parameters.rope_type (%s) is not supported (only default)",
                           path, cJSON_IsString(type) ? type->valuestring : "?");
  }
  if (cfg->arch == MPL_ARCH_QWEN2 && is_true(c, "use_sliding_window"))
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field use_sliding_window: sliding-window attention is "
                                              "not supported", path);
  if (strcmp(src->model_type, "mistral") == 0) {
    cJSON *sw = field(c, "sliding_window");
    if (sw && (!cJSON_IsNumber(sw) || sw->valuedouble < cfg->max_position_embeddings))
      return mpl_error_set(MPL_ERR_UNSUPPORTED,
                           "%s: field sliding_window (%g, below max_position_embeddings %d): "
                           "sliding-window attention is not supported",
                           path, cJSON_IsNumber(sw) ? sw->valuedouble : -1.0, cfg->max_position_embeddings);
  }
  if (cfg->arch != MPL_ARCH_GPT2) {
    if (is_true(c, "attention_bias") && cfg->arch == MPL_ARCH_LLAMA)
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field attention_bias = true is not supported", path);
    if (is_true(c, "mlp_bias"))
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field mlp_bias = true is not supported", path);
    cJSON *act = field(c, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field hidden_act (%s) is not supported (silu)", path,
                           cJSON_IsString(act) ? act->valuestring : "?");
  } else {
    cJSON *act = field(c, "activation_function");
    if (act && (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_new") != 0 &&
                                         strcmp(act->valuestring, "gelu_pytorch_tanh") != 0)))
      return mpl_error_set(MPL_ERR_UNSUPPORTED,
                           "%s: field activation_function (%s) is not supported (gelu_new)", path,
                           cJSON_IsString(act) ? act->valuestring : "?");
    if (is_true(c, "scale_attn_by_inverse_layer_idx"))
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field scale_attn_by_inverse_layer_idx = true is not "
                                                "supported", path);
    if (is_true(c, "add_cross_attention"))
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field add_cross_attention = true is not supported", path);
    cJSON *scale = field(c, "scale_attn_weights");
    if (scale && cJSON_IsFalse(scale))
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field scale_attn_weights = false is not supported", path);
  }
  static const char *const dtype_fields[] = {"torch_dtype", "dtype"};
  for (int i = 0; i < 2; i++) {
    cJSON *d = field(c, dtype_fields[i]);
    if (d && (!cJSON_IsString(d) || (strcmp(d->valuestring, "float32") != 0 &&
                                     strcmp(d->valuestring, "float16") != 0 &&
                                     strcmp(d->valuestring, "bfloat16") != 0)))
      return mpl_error_set(MPL_ERR_UNSUPPORTED,
                           "%s: field %s (%s) is not supported (float32, float16, bfloat16)", path,
                           dtype_fields[i], cJSON_IsString(d) ? d->valuestring : "?");
  }
  return MPL_OK;
}

static enum mpl_status read_config(struct hf_source *src, struct mpl_model_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cJSON *mt = field(src->config, "model_type");
  if (!cJSON_IsString(mt))
    return mpl_error_set(MPL_ERR_FORMAT, "%s: field model_type is missing", src->config_path);
  snprintf(src->model_type, sizeof src->model_type, "%s", mt->valuestring);
  if (strcmp(mt->valuestring, "llama") == 0 || strcmp(mt->valuestring, "mistral") == 0)
    cfg->arch = MPL_ARCH_LLAMA;
  else if (strcmp(mt->valuestring, "qwen2") == 0)
    cfg->arch = MPL_ARCH_QWEN2;
  else if (strcmp(mt->valuestring, "gpt2") == 0)
    cfg->arch = MPL_ARCH_GPT2;
  else
    return mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: field model_type '%.40s' is not supported (llama, mistral, qwen2, gpt2)",
                         src->config_path, mt->valuestring);
  enum mpl_status st = MPL_OK;
  if (cfg->arch == MPL_ARCH_GPT2) {
    if (st == MPL_OK) st = get_int(src, "vocab_size", true, 0, &cfg->vocab_size);
    if (st == MPL_OK) st = get_int(src, "n_embd", true, 0, &cfg->hidden_size);
    if (st == MPL_OK) st = get_int(src, "n_layer", true, 0, &cfg->n_layers);
    if (st == MPL_OK) st = get_int(src, "n_head", true, 0, &cfg->n_heads);
    if (st == MPL_OK) st = get_int(src, "n_positions", true, 0, &cfg->max_position_embeddings);
    if (st == MPL_OK) st = get_int(src, "n_inner", false, 4 * cfg->hidden_size, &cfg->intermediate_size);
    if (st == MPL_OK) st = get_float(src, src->config, "layer_norm_epsilon", false, 1e-5f, &cfg->norm_eps);
    cfg->n_kv_heads = cfg->n_heads;
    cfg->head_dim = cfg->n_heads > 0 ? cfg->hidden_size / cfg->n_heads : 0;
    if (st == MPL_OK && cfg->n_heads > 0 && cfg->hidden_size % cfg->n_heads != 0)
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: n_embd %d is not a multiple of n_head %d", src->config_path,
                         cfg->hidden_size, cfg->n_heads);
    cfg->tie_word_embeddings = true;
    cJSON *tie = field(src->config, "tie_word_embeddings");
    if (st == MPL_OK && tie && cJSON_IsFalse(tie))
      st = mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: field tie_word_embeddings = false is not supported for "
                                              "gpt2", src->config_path);
  } else {
    if (st == MPL_OK) st = get_int(src, "vocab_size", true, 0, &cfg->vocab_size);
    if (st == MPL_OK) st = get_int(src, "hidden_size", true, 0, &cfg->hidden_size);
    if (st == MPL_OK) st = get_int(src, "intermediate_size", true, 0, &cfg->intermediate_size);
    if (st == MPL_OK) st = get_int(src, "num_hidden_layers", true, 0, &cfg->n_layers);
    if (st == MPL_OK) st = get_int(src, "num_attention_heads", true, 0, &cfg->n_heads);
    if (st == MPL_OK) st = get_int(src, "num_key_value_heads", false, cfg->n_heads, &cfg->n_kv_heads);
    if (st == MPL_OK)
      st = get_int(src, "head_dim", false, cfg->n_heads > 0 ? cfg->hidden_size / cfg->n_heads : 0,
                   &cfg->head_dim);
    if (st == MPL_OK) st = get_int(src, "max_position_embeddings", true, 0, &cfg->max_position_embeddings);
    if (st == MPL_OK) st = get_float(src, src->config, "rms_norm_eps", true, 0, &cfg->norm_eps);
    cJSON *params = field(src->config, "rope_parameters"); /* newer form */
    if (st == MPL_OK && params && field(params, "rope_theta"))
      st = get_float(src, params, "rope_theta", true, 0, &cfg->rope_theta);
    else if (st == MPL_OK)
      st = get_float(src, src->config, "rope_theta", false, 10000.0f, &cfg->rope_theta);
    cJSON *tie = field(src->config, "tie_word_embeddings");
    cfg->tie_word_embeddings = tie ? cJSON_IsTrue(tie) : false; /* LLaMA, Mistral, Qwen2 default */
  }
  cfg->qkv_bias = cfg->arch == MPL_ARCH_QWEN2;
  if (st == MPL_OK) st = refuse_unsupported(src, cfg);
  if (st == MPL_OK) st = read_special_tokens(src, cfg);
  if (st == MPL_OK && (st = mpl_model_config_check(cfg)) != MPL_OK) mpl_error_wrap("%s", src->config_path);
  return st;
}

/* --- the tensors a config implies ---------------------------------------------- */

struct expected {
  char name[160];
  int n_dims;
  int64_t shape[2];
};
struct expected_list {
  int n, cap;
  struct expected *items;
};

static enum mpl_status expect(struct expected_list *l, const char *prefix, const char *name, int layer,
                              int64_t rows, int64_t cols) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    void *p = realloc(l->items, (size_t)l->cap * sizeof *l->items);
    if (!p) return mpl_error_set(MPL_ERR_NOMEM, "out of memory listing tensors");
    l->items = p;
  }
  struct expected *e = &l->items[l->n++];
  if (layer >= 0) { /* "model.layers.|mlp.up_proj.weight": the layer index goes at the bar */
    const char *base = strchr(name, '|');
    MPL_ASSERT(base, "bad pattern %s", name);
    snprintf(e->name, sizeof e->name, "%s%.*s%d.%s", prefix, (int)(base - name), name, layer, base + 1);
  } else {
    snprintf(e->name, sizeof e->name, "%s%s", prefix, name);
  }
  e->n_dims = cols > 0 ? 2 : 1;
  e->shape[0] = rows;
  e->shape[1] = cols > 0 ? cols : 0;
  return MPL_OK;
}

static enum mpl_status expected_tensors(const struct mpl_model_config *c, struct expected_list *l) {
  enum mpl_status st = MPL_OK;
  const char *prefix = c->arch == MPL_ARCH_GPT2 ? "transformer." : "";
  int64_t h = c->hidden_size, q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
  int64_t im = c->intermediate_size, v = c->vocab_size;
#define E(name, layer, rows, cols) \
  if (st == MPL_OK) st = expect(l, prefix, name, layer, rows, cols)
  if (c->arch == MPL_ARCH_GPT2) {
    E("wte.weight", -1, v, h);
    E("wpe.weight", -1, c->max_position_embeddings, h);
    for (int i = 0; i < c->n_layers; i++) {
      E("h.|ln_1.weight", i, h, 0);
      E("h.|ln_1.bias", i, h, 0);
      E("h.|attn.c_attn.weight", i, h, 3 * h); /* Conv1D: [in, out] */
      E("h.|attn.c_attn.bias", i, 3 * h, 0);
      E("h.|attn.c_proj.weight", i, h, h);
      E("h.|attn.c_proj.bias", i, h, 0);
      E("h.|ln_2.weight", i, h, 0);
      E("h.|ln_2.bias", i, h, 0);
      E("h.|mlp.c_fc.weight", i, h, im);
      E("h.|mlp.c_fc.bias", i, im, 0);
      E("h.|mlp.c_proj.weight", i, im, h);
      E("h.|mlp.c_proj.bias", i, h, 0);
    }
    E("ln_f.weight", -1, h, 0);
    E("ln_f.bias", -1, h, 0);
  } else {
    E("model.embed_tokens.weight", -1, v, h);
    for (int i = 0; i < c->n_layers; i++) {
      E("model.layers.|input_layernorm.weight", i, h, 0);
      E("model.layers.|self_attn.q_proj.weight", i, q, h);
      E("model.layers.|self_attn.k_proj.weight", i, kv, h);
      E("model.layers.|self_attn.v_proj.weight", i, kv, h);
      if (c->qkv_bias) {
        E("model.layers.|self_attn.q_proj.bias", i, q, 0);
        E("model.layers.|self_attn.k_proj.bias", i, kv, 0);
        E("model.layers.|self_attn.v_proj.bias", i, kv, 0);
      }
      E("model.layers.|self_attn.o_proj.weight", i, h, q);
      E("model.layers.|post_attention_layernorm.weight", i, h, 0);
      E("model.layers.|mlp.gate_proj.weight", i, im, h);
      E("model.layers.|mlp.up_proj.weight", i, im, h);
      E("model.layers.|mlp.down_proj.weight", i, h, im);
    }
    E("model.norm.weight", -1, h, 0);
    if (!c->tie_word_embeddings) E("lm_head.weight", -1, v, h);
  }
#undef E
  return st;
}

/* Tensors a checkpoint may carry that are not weights (buffers) or not needed. */
static bool is_ignorable(const struct mpl_model_config *c, const char *name) {
  size_t n = strlen(name);
#define ENDS(s) (n >= strlen(s) && strcmp(name + n - strlen(s), s) == 0)
  if (ENDS("rotary_emb.inv_freq")) return true;
  if (c->arch == MPL_ARCH_GPT2 && (ENDS(".attn.bias") || ENDS(".attn.masked_bias"))) return true;
#undef ENDS
  return c->tie_word_embeddings && strcmp(name, "lm_head.weight") == 0;
}

/* The checkpoint's name of a tensor the file calls name. */
static const char *source_name(const struct hf_source *src, const char *name) {
  return src->gpt2_unprefixed && strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
}

static void shape_text(int n_dims, const int64_t *shape, char *buf, size_t n) {
  size_t at = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < n_dims && at < n; i++)
    at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (at < n) snprintf(buf + at, n - at, "]");
}

/* One tensor from the checkpoint's dtype into the stored one. */
static void convert_data(const struct mpl_io__st_tensor *t, enum mpl_dtype out, void *dst, size_t n) {
  enum mpl_dtype in = t->dtype == MPL_ST_F32 ? MPL_DTYPE_F32 : t->dtype == MPL_ST_BF16 ? MPL_DTYPE_BF16 : MPL_DTYPE_F16;
  if (in == out) {
    memcpy(dst, t->data, n * mpl_dtype_bytes(out));
    return;
  }
  if (out == MPL_DTYPE_F32) {
    if (in == MPL_DTYPE_BF16) { /* the mapping need not be aligned for uint16_t */
      float *d = dst;
      for (size_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, t->data + 2 * i, 2);
        d[i] = mpl_bf16_to_f32(v);
      }
    } else {
      float *d = dst;
      for (size_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, t->data + 2 * i, 2);
        d[i] = mpl_f16_to_f32(v);
      }
    }
    return;
  }
  uint16_t *d = dst; /* to bf16 */
  for (size_t i = 0; i < n; i++) {
    float f;
    if (in == MPL_DTYPE_F32) {
      memcpy(&f, t->data + 4 * i, 4);
    } else {
      uint16_t v;
      memcpy(&v, t->data + 2 * i, 2);
      f = mpl_f16_to_f32(v);
    }
    d[i] = mpl_f32_to_bf16(f);
  }
}

static enum mpl_status write_tensors(const struct hf_source *src, const struct mpl_model_config *cfg,
                                     const struct mpl_io__st_set *set, enum mpl_dtype dtype, hid_t file) {
  struct expected_list list = {0, 0, NULL};
  enum mpl_status st = expected_tensors(cfg, &list);
  /* check everything before writing anything: a bad checkpoint fails fast */
  for (int i = 0; st == MPL_OK && i < list.n; i++) {
    const struct expected *e = &list.items[i];
    const struct mpl_io__st_tensor *t = mpl_io__st_find(set, source_name(src, e->name));
    if (!t) {
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s is missing from the checkpoint", src->dir,
                         source_name(src, e->name));
      break;
    }
    const char *file_name = set->files[t->file_index].path;
    if (t->dtype == MPL_ST_OTHER) {
      st = mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (F32, F16 or BF16 are imported)",
                         file_name, t->name, t->dtype_name);
      break;
    }
    bool same = t->n_dims == e->n_dims;
    for (int d = 0; same && d < e->n_dims; d++) same = t->shape[d] == e->shape[d];
    if (!same) {
      char want[64], got[64];
      shape_text(e->n_dims, e->shape, want, sizeof want);
      shape_text(t->n_dims, t->shape, got, sizeof got);
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: tensor %s has shape %s but config.json implies %s", file_name,
                         t->name, got, want);
    }
  }
  for (int i = 0; st == MPL_OK && i < set->n_tensors; i++) {
    const char *name = set->tensors[i].name;
    bool listed = false;
    for (int j = 0; j < list.n && !listed; j++) listed = strcmp(source_name(src, list.items[j].name), name) == 0;
    if (!listed && !is_ignorable(cfg, name))
      mpl_log_warn("%s: tensor %s is not used by %s; not stored", src->dir, name, mpl_arch_name(cfg->arch));
  }
  hid_t group = H5I_INVALID_HID;
  if (st == MPL_OK) {
    group = H5Gcreate2(file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) st = mpl_error_set(MPL_ERR_IO, "cannot create /tensors: %s", mpl_io__h5_message());
  }
  for (int i = 0; st == MPL_OK && i < list.n; i++) {
    const struct mpl_io__st_tensor *t = mpl_io__st_find(set, source_name(src, list.items[i].name));
    enum mpl_dtype out = dtype;
    if (out == MPL_DTYPE_COUNT) out = t->dtype == MPL_ST_BF16 ? MPL_DTYPE_BF16 : MPL_DTYPE_F32;
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= (size_t)t->shape[d];
    void *buf = mpl_alloc(n * mpl_dtype_bytes(out), t->name);
    if (!buf) {
      st = MPL_ERR_NOMEM;
      break;
    }
    convert_data(t, out, buf, n);
    st = mpl_io__dataset_write(group, list.items[i].name, t->n_dims, t->shape, out, buf, NULL);
    mpl_free(buf);
  }
  if (group >= 0) H5Gclose(group);
  free(list.items);
  return st;
}

/* --- the whole import ---------------------------------------------------------- */

static enum mpl_status load_json(const char *dir, const char *name, bool optional, char **text, cJSON **json) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  *json = NULL;
  enum mpl_status st = mpl_io__slurp(path, optional, text, NULL);
  if (st != MPL_OK || !*text) return st;
  *json = cJSON_Parse(*text);
  if (!*json) return mpl_error_set(MPL_ERR_FORMAT, "%s is not valid JSON", path);
  return MPL_OK;
}

enum mpl_status mpl_io_convert(const char *hf_dir, const char *out_path, enum mpl_dtype dtype) {
  struct hf_source src;
  memset(&src, 0, sizeof src);
  src.dir = hf_dir;
  struct stat sb;
  if (stat(hf_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return mpl_error_set(MPL_ERR_IO, "%s: no such Hugging Face directory", hf_dir);
  if (dtype != MPL_DTYPE_F32 && dtype != MPL_DTYPE_BF16 && dtype != MPL_DTYPE_COUNT)
    return mpl_error_set(MPL_ERR_ARG, "--dtype %s: models are stored as f32 or bf16", mpl_dtype_name(dtype));
  snprintf(src.config_path, sizeof src.config_path, "%s/config.json", hf_dir);
  char *config_text = NULL;
  struct mpl_io__st_set set;
  memset(&set, 0, sizeof set);
  struct mpl_io__writer w;
  memset(&w, 0, sizeof w);
  struct mpl_model_config cfg;
  enum mpl_status st = load_json(hf_dir, "config.json", false, &config_text, &src.config);
  if (st == MPL_OK) st = load_json(hf_dir, "generation_config.json", true, &src.gen_config_text, &src.gen_config);
  if (st == MPL_OK) st = load_json(hf_dir, "tokenizer_config.json", true, &src.tok_config_text, &src.tok_config);
  if (st == MPL_OK) st = load_json(hf_dir, "tokenizer.json", true, &src.tokenizer_text, &src.tokenizer);
  if (st == MPL_OK) st = read_config(&src, &cfg);
  if (st == MPL_OK) st = mpl_io__st_open(hf_dir, &set);
  if (st == MPL_OK && cfg.arch == MPL_ARCH_GPT2 && !mpl_io__st_find(&set, "transformer.wte.weight") &&
      mpl_io__st_find(&set, "wte.weight"))
    src.gpt2_unprefixed = true;
  if (st == MPL_OK && !src.tokenizer_text)
    mpl_log_warn("%s: no tokenizer.json; the model file will have no tokenizer", hf_dir);
  if (st == MPL_OK) st = mpl_io__writer_create(&w, out_path);
  if (st == MPL_OK) st = mpl_io__attr_write_str(w.file, "format", "mpillm");
  if (st == MPL_OK) st = mpl_io__attr_write_i64(w.file, "format_version", MPL_IO_FORMAT_VERSION);
  if (st == MPL_OK) st = mpl_io__attr_write_str(w.file, "arch", mpl_arch_name(cfg.arch));
  if (st == MPL_OK) st = mpl_io__config_write(w.file, &cfg, src.model_type);
  if (st == MPL_OK) st = write_tensors(&src, &cfg, &set, dtype, w.file);
  if (st == MPL_OK) {
    hid_t g = H5Gcreate2(w.file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) st = mpl_error_set(MPL_ERR_IO, "cannot create /tokenizer: %s", mpl_io__h5_message());
    if (st == MPL_OK && src.tokenizer_text) st = mpl_io__text_write(g, "tokenizer.json", src.tokenizer_text);
    if (st == MPL_OK && src.tok_config_text)
      st = mpl_io__text_write(g, "tokenizer_config.json", src.tok_config_text);
    if (st == MPL_OK && src.gen_config_text)
      st = mpl_io__text_write(g, "generation_config.json", src.gen_config_text);
    if (g >= 0) H5Gclose(g);
  }
  if (st == MPL_OK) st = mpl_io__writer_commit(&w);
  if (st != MPL_OK) {
    mpl_io__writer_abort(&w);
    mpl_error_wrap("convert %s", hf_dir);
  }
  mpl_io__st_close(&set);
  cJSON_Delete(src.config);
  cJSON_Delete(src.gen_config);
  cJSON_Delete(src.tok_config);
  cJSON_Delete(src.tokenizer);
  free(config_text);
  free(src.tokenizer_text);
  free(src.tok_config_text);
  free(src.gen_config_text);
  return st;
}
