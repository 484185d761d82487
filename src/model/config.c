/* Architecture names and the check that refuses configs the engine cannot run. */
#include <string.h>

#include "mpillm/model.h"

static const char *const arch_names[MPL_ARCH_COUNT] = {"llama", "qwen2", "gpt2", "blend"};

const char *mpl_arch_name(enum mpl_arch arch) {
  return (unsigned)arch < MPL_ARCH_COUNT ? arch_names[arch] : "unknown";
}

enum mpl_status mpl_arch_parse(const char *name, enum mpl_arch *out) {
  for (int i = 0; i < MPL_ARCH_COUNT; i++)
    if (strcmp(name, arch_names[i]) == 0) {
      *out = (enum mpl_arch)i;
      return MPL_OK;
    }
  return mpl_error_set(MPL_ERR_UNSUPPORTED,
                       "architecture '%s' is not supported (llama, mistral, qwen2, gpt2)", name);
}

#define POSITIVE(field, name)                                                              \
  if (cfg->field <= 0)                                                                     \
    return mpl_error_set(MPL_ERR_FORMAT, "config field %s must be positive, is %d", name, \
                         (int)cfg->field)

enum mpl_status mpl_model_config_check(const struct mpl_model_config *cfg) {
  if ((unsigned)cfg->arch >= MPL_ARCH_COUNT || cfg->arch == MPL_ARCH_BLEND)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "config: architecture %d is not a language model",
                         (int)cfg->arch);
  POSITIVE(vocab_size, "vocab_size");
  POSITIVE(hidden_size, "hidden_size");
  POSITIVE(intermediate_size, "intermediate_size");
  POSITIVE(n_layers, "num_hidden_layers");
  POSITIVE(n_heads, "num_attention_heads");
  POSITIVE(n_kv_heads, "num_key_value_heads");
  POSITIVE(head_dim, "head_dim");
  POSITIVE(max_position_embeddings, "max_position_embeddings");
  if (cfg->n_heads % cfg->n_kv_heads != 0)
    return mpl_error_set(MPL_ERR_FORMAT,
                         "config: num_attention_heads (%d) is not a multiple of "
                         "num_key_value_heads (%d)",
                         cfg->n_heads, cfg->n_kv_heads);
  if (cfg->head_dim % 2 != 0 && cfg->arch != MPL_ARCH_GPT2)
    return mpl_error_set(MPL_ERR_FORMAT, "config: head_dim %d must be even for RoPE", cfg->head_dim);
  if (!(cfg->norm_eps > 0.0f))
    return mpl_error_set(MPL_ERR_FORMAT, "config: the norm epsilon must be positive");
  if (cfg->arch != MPL_ARCH_GPT2 && !(cfg->rope_theta > 0.0f))
    return mpl_error_set(MPL_ERR_FORMAT, "config field rope_theta must be positive");
  if (cfg->n_eos < 0 || cfg->n_eos > MPL_MAX_EOS)
    return mpl_error_set(MPL_ERR_FORMAT, "config: %d eos_token_id values (at most %d)", cfg->n_eos,
                         MPL_MAX_EOS);
  for (int i = 0; i < cfg->n_eos; i++)
    if (cfg->eos_token_ids[i] < 0 || cfg->eos_token_ids[i] >= cfg->vocab_size)
      return mpl_error_set(MPL_ERR_FORMAT, "config: eos_token_id %d is outside the vocabulary (%d)",
                           cfg->eos_token_ids[i], cfg->vocab_size);
  if (cfg->bos_token_id >= cfg->vocab_size)
    return mpl_error_set(MPL_ERR_FORMAT, "config: bos_token_id %d is outside the vocabulary (%d)",
                         cfg->bos_token_id, cfg->vocab_size);
  return MPL_OK;
}
