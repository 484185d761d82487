/* Import of the seed network from a Keras HDF5 model file (model.save("x.h5"), the
 * "legacy" format of Keras 2 and 3):
 *   /                       attr model_config: the functional graph as JSON
 *   /model_weights/<layer>  attr weight_names ("<layer>/kernel:0" in Keras 2,
 *                           "<layer>/kernel" in Keras 3); datasets at those paths
 * Dense kernels are [in, out], biases [out]. The graph, not the layer names, says
 * which layer is which: output Dense(softmax) <- Concatenate <- per branch
 * Dense(relu) <- Dense(relu) <- Input. */
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpillm/blend.h"

#define NAME_BYTES 256
#define MAX_INBOUND 4

struct layer {
  char name[NAME_BYTES];
  const char *class_name;
  const cJSON *config;
  int n_inbound; /* > MAX_INBOUND only for the Concatenate */
  char (*inbound)[NAME_BYTES];
};

struct graph {
  int n_layers;
  struct layer *layers;
};

static void graph_free(struct graph *g) {
  for (int i = 0; i < g->n_layers; i++) free(g->layers[i].inbound);
  free(g->layers);
}

static const struct layer *find_layer(const struct graph *g, const char *name) {
  for (int i = 0; i < g->n_layers; i++)
    if (strcmp(g->layers[i].name, name) == 0) return &g->layers[i];
  return NULL;
}

/* Collects the names of inbound layers from either JSON shape:
 * Keras 3: {"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": [name, 0, 0]}}]}
 * Keras 2: [[[name, 0, 0, {}], ...]] */
static void collect_inbound(const cJSON *node, struct layer *l, int cap) {
  if (!node) return;
  if (cJSON_IsObject(node)) {
    const cJSON *history = cJSON_GetObjectItemCaseSensitive(node, "keras_history");
    if (cJSON_IsArray(history) && cJSON_IsString(cJSON_GetArrayItem(history, 0))) {
      if (l->n_inbound < cap)
        snprintf(l->inbound[l->n_inbound], NAME_BYTES, "%s", cJSON_GetArrayItem(history, 0)->valuestring);
      l->n_inbound++;
      return;
    }
    for (const cJSON *c = node->child; c; c = c->next) collect_inbound(c, l, cap);
    return;
  }
  if (cJSON_IsArray(node)) {
    const cJSON *first = cJSON_GetArrayItem(node, 0);
    if (cJSON_IsString(first) && cJSON_IsNumber(cJSON_GetArrayItem(node, 1))) {
      if (l->n_inbound < cap) snprintf(l->inbound[l->n_inbound], NAME_BYTES, "%s", first->valuestring);
      l->n_inbound++;
      return;
    }
    for (const cJSON *c = node->child; c; c = c->next) collect_inbound(c, l, cap);
  }
}

static enum mpl_status graph_build(const cJSON *root, const char *path, struct graph *g) {
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(root, "config");
  const cJSON *layers = cJSON_GetObjectItemCaseSensitive(config, "layers");
  if (!cJSON_IsArray(layers))
    return mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: model_config has no layer list (a functional model is needed)", path);
  g->n_layers = cJSON_GetArraySize(layers);
  g->layers = calloc((size_t)g->n_layers + 1, sizeof *g->layers);
  if (!g->layers) return mpl_error_set(MPL_ERR_NOMEM, "no memory for %d Keras layers", g->n_layers);
  int i = 0;
  for (const cJSON *item = layers->child; item; item = item->next, i++) {
    struct layer *l = &g->layers[i];
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(item, "class_name");
    l->config = cJSON_GetObjectItemCaseSensitive(item, "config");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(item, "name");
    if (!cJSON_IsString(name)) name = cJSON_GetObjectItemCaseSensitive(l->config, "name");
    if (!cJSON_IsString(cls) || !cJSON_IsString(name))
      return mpl_error_set(MPL_ERR_FORMAT, "%s: layer %d of model_config has no class or name", path, i);
    l->class_name = cls->valuestring;
    snprintf(l->name, NAME_BYTES, "%s", name->valuestring);
    int cap = MPL_BLEND_MAX_SUBMODELS;
    l->inbound = calloc((size_t)cap, NAME_BYTES);
    if (!l->inbound) return mpl_error_set(MPL_ERR_NOMEM, "no memory for Keras layer links");
    collect_inbound(cJSON_GetObjectItemCaseSensitive(item, "inbound_nodes"), l, cap);
    if (l->n_inbound > cap)
      return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: layer %s has %d inputs (at most %d)", path,
                           l->name, l->n_inbound, cap);
  }
  return MPL_OK;
}

/* The layer's activation must be want ("relu", "softmax"). */
static enum mpl_status check_dense(const struct layer *l, const char *want, const char *role,
                                   const char *path) {
  if (strcmp(l->class_name, "Dense") != 0)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: layer %s (%s) should be a Dense layer, is %s",
                         path, l->name, role, l->class_name);
  const cJSON *act = cJSON_GetObjectItemCaseSensitive(l->config, "activation");
  if (!cJSON_IsString(act) || strcmp(act->valuestring, want) != 0)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: layer %s (%s) should use activation %s, uses %s",
                         path, l->name, role, want, cJSON_IsString(act) ? act->valuestring : "another");
  if (l->n_inbound != 1)
    return mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: layer %s (%s) has %d inputs, expected 1", path,
                         l->name, role, l->n_inbound);
  return MPL_OK;
}

/* A string attribute of any HDF5 string kind; *out is malloc'd. */
static enum mpl_status read_text_attr(hid_t obj, const char *name, char **out, const char *path) {
  *out = NULL;
  if (H5Aexists(obj, name) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT,
                         "%s: no '%s' attribute: not a Keras model saved with model.save(\"x.h5\")",
                         path, name);
  hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t type = H5Aget_type(attr);
  enum mpl_status st = MPL_OK;
  if (H5Tis_variable_str(type) > 0) {
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    char *value = NULL;
    if (H5Aread(attr, mem, &value) < 0 || !value || !(*out = strdup(value)))
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read attribute %s", path, name);
    if (value) H5free_memory(value);
    H5Tclose(mem);
  } else if (H5Tget_class(type) == H5T_STRING) {
    size_t size = H5Tget_size(type);
    *out = calloc(size + 1, 1);
    if (!*out || H5Aread(attr, type, *out) < 0)
      st = mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read attribute %s", path, name);
  } else {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: attribute %s is not a string", path, name);
  }
  H5Tclose(type);
  H5Aclose(attr);
  if (st != MPL_OK) {
    free(*out);
    *out = NULL;
  }
  return st;
}

/* Finds the dataset paths of a Dense layer's kernel and bias through the layer
 * group's weight_names attribute (falling back to <layer>/<layer>/kernel[:0]). */
static enum mpl_status find_weights(hid_t file, const char *layer, char *kernel, char *bias,
                                    const char *path) {
  char group_path[NAME_BYTES + 32];
  snprintf(group_path, sizeof group_path, "model_weights/%s", layer);
  kernel[0] = bias[0] = '\0';
  if (H5Lexists(file, "model_weights", H5P_DEFAULT) <= 0 ||
      H5Lexists(file, group_path, H5P_DEFAULT) <= 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: no weights for layer %s (/%s is missing)", path,
                         layer, group_path);
  hid_t group = H5Gopen2(file, group_path, H5P_DEFAULT);
  if (H5Aexists(group, "weight_names") > 0) {
    hid_t attr = H5Aopen(group, "weight_names", H5P_DEFAULT);
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    bool vlen = H5Tis_variable_str(type) > 0;
    size_t size = vlen ? sizeof(char *) : H5Tget_size(type);
    char *buf = calloc((size_t)(n > 0 ? n : 1), size + 1);
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, vlen ? H5T_VARIABLE : size + 1);
    H5Tset_cset(mem, H5Tget_cset(type));
    if (buf && H5Aread(attr, mem, buf) >= 0) {
      for (hssize_t k = 0; k < n; k++) {
        const char *w = vlen ? ((char **)buf)[k] : buf + (size_t)k * (size + 1);
        if (!w) continue;
        const char *base = strrchr(w, '/');
        base = base ? base + 1 : w;
        char *dst = strncmp(base, "kernel", 6) == 0 ? kernel : strncmp(base, "bias", 4) == 0 ? bias : NULL;
        if (dst) snprintf(dst, 2 * NAME_BYTES, "%s/%s", group_path, w);
      }
      if (vlen) H5Dvlen_reclaim(mem, space, H5P_DEFAULT, buf);
    }
    free(buf);
    H5Tclose(mem);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
  }
  H5Gclose(group);
  const char *suffixes[2] = {":0", ""};
  for (int k = 0; k < 2 && !kernel[0]; k++) {
    char guess[2 * NAME_BYTES];
    snprintf(guess, sizeof guess, "%s/%s/kernel%s", group_path, layer, suffixes[k]);
    if (H5Lexists(file, guess, H5P_DEFAULT) > 0) {
      snprintf(kernel, 2 * NAME_BYTES, "%s", guess);
      snprintf(bias, 2 * NAME_BYTES, "%s/%s/bias%s", group_path, layer, suffixes[k]);
    }
  }
  if (!kernel[0])
    return mpl_error_set(MPL_ERR_FORMAT, "%s: layer %s has no kernel under /%s", path, layer,
                         group_path);
  return MPL_OK;
}

static enum mpl_status dense_shape(hid_t file, const char *kernel, const char *layer,
                                   const char *path, int *n_in, int *n_out) {
  hid_t dset = H5Dopen2(file, kernel, H5P_DEFAULT);
  if (dset < 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: cannot open %s (layer %s)", path, kernel, layer);
  hid_t space = H5Dget_space(dset);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_ndims(space);
  if (nd == 2) H5Sget_simple_extent_dims(space, dims, NULL);
  H5Sclose(space);
  H5Dclose(dset);
  if (nd != 2)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: kernel of layer %s is not a matrix", path, layer);
  *n_in = (int)dims[0];
  *n_out = (int)dims[1];
  return MPL_OK;
}

/* Reads rows [0, n_in) of a Dense kernel into dst (row stride n_out) and its bias (or
 * zeros when the layer has none). */
static enum mpl_status read_dense(hid_t file, const char *kernel, const char *bias,
                                  const char *layer, const char *path, float *w, float *b,
                                  int n_out) {
  hid_t dset = H5Dopen2(file, kernel, H5P_DEFAULT);
  herr_t rc = H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
  H5Dclose(dset);
  if (rc < 0) return mpl_error_set(MPL_ERR_FORMAT, "%s: cannot read the kernel of layer %s", path, layer);
  if (!bias[0] || H5Lexists(file, bias, H5P_DEFAULT) <= 0) {
    memset(b, 0, (size_t)n_out * sizeof(float)); /* use_bias=False */
    return MPL_OK;
  }
  dset = H5Dopen2(file, bias, H5P_DEFAULT);
  hid_t space = H5Dget_space(dset);
  hssize_t n = H5Sget_simple_extent_npoints(space);
  H5Sclose(space);
  rc = n == n_out ? H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b) : -1;
  H5Dclose(dset);
  if (rc < 0)
    return mpl_error_set(MPL_ERR_FORMAT, "%s: bias of layer %s has %lld values, expected %d", path,
                         layer, (long long)n, n_out);
  return MPL_OK;
}

/* The name of the k-th entry of input_layers / output_layers (Keras 3 gives a bare
 * [name, 0, 0] when there is one). */
static const char *io_layer_name(const cJSON *list, int k, int *n) {
  if (!cJSON_IsArray(list)) return *n = 0, NULL;
  const cJSON *first = cJSON_GetArrayItem(list, 0);
  if (cJSON_IsString(first)) {
    *n = 1;
    return k == 0 ? first->valuestring : NULL;
  }
  *n = cJSON_GetArraySize(list);
  const cJSON *item = cJSON_GetArrayItem(cJSON_GetArrayItem(list, k), 0);
  return cJSON_IsString(item) ? item->valuestring : NULL;
}

enum mpl_status mpl_blend_keras_read(const char *path, struct mpl_blend_model *model) {
  memset(model, 0, sizeof *model);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0)
    return mpl_error_set(access(path, R_OK) ? MPL_ERR_IO : MPL_ERR_FORMAT,
                         "cannot open %s as an HDF5 file", path);
  char *json_text = NULL;
  cJSON *json = NULL;
  struct graph g = {0};
  struct mpl_blend_config cfg;
  memset(&cfg, 0, sizeof cfg);
  /* per sub-model (in input order): its two Dense layers and its concat position */
  const struct layer *dense0[MPL_BLEND_MAX_SUBMODELS], *dense1[MPL_BLEND_MAX_SUBMODELS];
  int concat_pos[MPL_BLEND_MAX_SUBMODELS];
  char kernel[2 * NAME_BYTES], bias[2 * NAME_BYTES];
  enum mpl_status st = read_text_attr(file, "model_config", &json_text, path);
  if (st != MPL_OK) goto out;
  json = cJSON_Parse(json_text);
  if (!json) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: model_config is not valid JSON", path);
    goto out;
  }
  if ((st = graph_build(json, path, &g)) != MPL_OK) goto out;
  const cJSON *mconf = cJSON_GetObjectItemCaseSensitive(json, "config");
  int n_out = 0, n_in = 0;
  const char *out_name = io_layer_name(cJSON_GetObjectItemCaseSensitive(mconf, "output_layers"), 0, &n_out);
  io_layer_name(cJSON_GetObjectItemCaseSensitive(mconf, "input_layers"), 0, &n_in);
  const struct layer *head = out_name ? find_layer(&g, out_name) : NULL;
  if (n_out != 1 || !head) {
    st = mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: the model must have exactly one output layer", path);
    goto out;
  }
  if ((st = check_dense(head, "softmax", "the head", path)) != MPL_OK) goto out;
  const struct layer *concat = find_layer(&g, head->inbound[0]);
  if (!concat || strcmp(concat->class_name, "Concatenate") != 0) {
    st = mpl_error_set(MPL_ERR_UNSUPPORTED, "%s: the head %s should take a Concatenate of the branches, takes %s",
                       path, head->name, concat ? concat->class_name : head->inbound[0]);
    goto out;
  }
  cfg.n_submodels = concat->n_inbound;
  if (n_in != cfg.n_submodels || cfg.n_submodels < 1) {
    st = mpl_error_set(MPL_ERR_UNSUPPORTED,
                       "%s: %d inputs and %d concatenated branches: the seed network has one "
                       "input per branch",
                       path, n_in, cfg.n_submodels);
    goto out;
  }
  /* sub-model i is the branch of input i; concat_pos says where its z sat for the head */
  for (int i = 0; i < cfg.n_submodels; i++) {
    int dummy = 0;
    const char *in_name = io_layer_name(cJSON_GetObjectItemCaseSensitive(mconf, "input_layers"), i, &dummy);
    concat_pos[i] = -1;
    for (int p = 0; p < cfg.n_submodels; p++) {
      const struct layer *d1 = find_layer(&g, concat->inbound[p]);
      const struct layer *d0 = d1 && d1->n_inbound == 1 ? find_layer(&g, d1->inbound[0]) : NULL;
      if (d0 && d0->n_inbound == 1 && in_name && strcmp(d0->inbound[0], in_name) == 0) {
        concat_pos[i] = p;
        dense1[i] = d1;
        dense0[i] = d0;
      }
    }
    if (concat_pos[i] < 0) {
      st = mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: input %s does not reach the Concatenate through two Dense layers",
                         path, in_name ? in_name : "?");
      goto out;
    }
    if ((st = check_dense(dense0[i], "relu", "first layer of a branch", path)) != MPL_OK ||
        (st = check_dense(dense1[i], "relu", "second layer of a branch", path)) != MPL_OK)
      goto out;
  }
  /* shapes: every branch Dense(in_i -> h) -> Dense(h -> h), head Dense(L*h -> C) */
  for (int i = 0; i < cfg.n_submodels; i++) {
    int a_in, a_out, b_in, b_out;
    if ((st = find_weights(file, dense0[i]->name, kernel, bias, path)) != MPL_OK ||
        (st = dense_shape(file, kernel, dense0[i]->name, path, &a_in, &a_out)) != MPL_OK ||
        (st = find_weights(file, dense1[i]->name, kernel, bias, path)) != MPL_OK ||
        (st = dense_shape(file, kernel, dense1[i]->name, path, &b_in, &b_out)) != MPL_OK)
      goto out;
    if (i == 0) cfg.hidden = a_out;
    if (a_out != cfg.hidden || b_in != cfg.hidden || b_out != cfg.hidden) {
      st = mpl_error_set(MPL_ERR_UNSUPPORTED,
                         "%s: branch of input %d is Dense(%d -> %d) -> Dense(%d -> %d); every "
                         "layer of every branch must have the same width (%d)",
                         path, i, a_in, a_out, b_in, b_out, cfg.hidden);
      goto out;
    }
    cfg.in_widths[i] = a_in;
  }
  int h_in = 0, n_classes = 0;
  if ((st = find_weights(file, head->name, kernel, bias, path)) != MPL_OK ||
      (st = dense_shape(file, kernel, head->name, path, &h_in, &n_classes)) != MPL_OK)
    goto out;
  cfg.n_classes = n_classes;
  if (h_in != cfg.n_submodels * cfg.hidden) {
    st = mpl_error_set(MPL_ERR_FORMAT, "%s: head %s takes %d inputs but %d branches of width %d give %d",
                       path, head->name, h_in, cfg.n_submodels, cfg.hidden,
                       cfg.n_submodels * cfg.hidden);
    goto out;
  }
  if ((st = mpl_blend_config_check(&cfg, path)) != MPL_OK) goto out;
  if ((st = mpl_blend_model_alloc(&cfg, 0, cfg.n_submodels, model)) != MPL_OK) goto out;
  for (int i = 0; i < cfg.n_submodels && st == MPL_OK; i++) {
    if ((st = find_weights(file, dense0[i]->name, kernel, bias, path)) == MPL_OK)
      st = read_dense(file, kernel, bias, dense0[i]->name, path, model->w0[i], model->b0[i], cfg.hidden);
    if (st == MPL_OK && (st = find_weights(file, dense1[i]->name, kernel, bias, path)) == MPL_OK)
      st = read_dense(file, kernel, bias, dense1[i]->name, path, model->w1[i], model->b1[i], cfg.hidden);
  }
  if (st == MPL_OK) {
    /* the head is read in concat order and its row blocks put in input order */
    size_t block = (size_t)cfg.hidden * (size_t)cfg.n_classes;
    float *w = malloc((size_t)cfg.n_submodels * block * sizeof(float));
    if (!w) st = mpl_error_set(MPL_ERR_NOMEM, "no memory for the head of %s", path);
    if (st == MPL_OK && (st = find_weights(file, head->name, kernel, bias, path)) == MPL_OK)
      st = read_dense(file, kernel, bias, head->name, path, w, model->head_b, cfg.n_classes);
    for (int i = 0; st == MPL_OK && i < cfg.n_submodels; i++)
      memcpy(model->head_w + (size_t)i * block, w + (size_t)concat_pos[i] * block, block * sizeof(float));
    free(w);
  }
  if (st != MPL_OK) mpl_blend_model_free(model);
out:
  graph_free(&g);
  cJSON_Delete(json);
  free(json_text);
  H5Fclose(file);
  return st;
}
