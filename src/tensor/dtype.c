/* Element types: names, sizes and conversion to f32. */
#include <string.h>

#include "mpillm/tensor.h"
#include "tensor/kernels.h"

static const char *const dtype_names[MPL_DTYPE_COUNT] = {"f32", "bf16", "f16"};
static const size_t dtype_bytes[MPL_DTYPE_COUNT] = {4, 2, 2};

const char *mpl_dtype_name(enum mpl_dtype dtype) {
  return (unsigned)dtype < MPL_DTYPE_COUNT ? dtype_names[dtype] : "unknown";
}

size_t mpl_dtype_bytes(enum mpl_dtype dtype) {
  MPL_ASSERT((unsigned)dtype < MPL_DTYPE_COUNT, "bad dtype %d", (int)dtype);
  return dtype_bytes[dtype];
}

enum mpl_status mpl_dtype_parse(const char *name, enum mpl_dtype *out) {
  for (int i = 0; i < MPL_DTYPE_COUNT; i++)
    if (strcmp(name, dtype_names[i]) == 0) {
      *out = (enum mpl_dtype)i;
      return MPL_OK;
    }
  return mpl_error_set(MPL_ERR_ARG, "unknown dtype '%s' (expected f32, bf16 or f16)", name);
}

float mpl_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        exp--;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  union { uint32_t u; float f; } v = {bits};
  return v.f;
}

void mpl_tensor_to_f32(float *dst, const void *src, enum mpl_dtype dtype, size_t n) {
  switch (dtype) {
  case MPL_DTYPE_F32:
    memmove(dst, src, n * sizeof(float));
    return;
  case MPL_DTYPE_BF16:
    mpl_tensor__bf16_to_f32(dst, src, n);
    return;
  case MPL_DTYPE_F16: {
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i++) dst[i] = mpl_f16_to_f32(s[i]);
    return;
  }
  default:
    MPL_ASSERT(0, "bad dtype %d", (int)dtype);
  }
}
