#!/usr/bin/env python3
"""Builds the seed network of the original design in Keras (one Input per branch,
Dense(relu) -> Dense(relu) per branch, Concatenate, Dense(softmax)), saves it with
Keras itself in the legacy HDF5 format (model.save("x.h5")), and writes reference
outputs computed with numpy, the oracle the C tests compare against.

    KERAS_BACKEND=torch scripts/make_blend_reference.py            # the test fixtures
    KERAS_BACKEND=torch scripts/make_blend_reference.py --config configs/blend_example.ini \
        --out /tmp/design                                           # the design's size

For each network NAME it writes NAME.keras.h5 (Keras's file) and NAME.ref.h5 with
/x [B, sum(in)], /z [B, L*h] and /probs [B, C] (f32; numpy computes in float64 from
the f32 weights). Needs keras (any backend), numpy, h5py; CI does not run it.

Why one /probs serves every alpha: both execution paths compute the same function,
so mix's z = alpha*z_model + (1-alpha)*z_data and split's row routing give the same
answer for every alpha. The script computes both blends literally for several alphas
and asserts exactly that before it writes the reference.
"""
import argparse
import configparser
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

ALPHAS = (0.0, 0.3, 0.5, 1.0)

# the committed fixtures: small, with uneven widths; L5 concatenates its branches in a
# permuted order and leaves Keras to name the layers, so the import must follow the
# graph, not names or order
FIXTURES = {
    "keras_L3": dict(in_widths=[8, 5, 7], hidden=16, classes=10, rows=11, concat_order=None,
                     named=True, seed=3),
    "keras_L5": dict(in_widths=[6, 4, 5, 3, 7], hidden=8, classes=12, rows=13,
                     concat_order=[2, 0, 4, 1, 3], named=False, seed=5),
}


def build(in_widths, hidden, classes, concat_order, named, seed):
    """Returns the Keras model, the concat order, the (Dense, Dense) pair of each
    branch in input order and the head layer."""
    import keras
    from keras import layers

    rng = np.random.default_rng(seed)
    n = len(in_widths)
    order = concat_order or list(range(n))
    inputs, branches, pairs = [], [], []
    for i, w in enumerate(in_widths):
        x = keras.Input((w,), name=f"x_{i}" if named else None)
        d0 = layers.Dense(hidden, activation="relu", name=f"submodel_{i}_dense_0" if named else None)
        d1 = layers.Dense(hidden, activation="relu", name=f"submodel_{i}_dense_1" if named else None)
        inputs.append(x)
        branches.append(d1(d0(x)))
        pairs.append((d0, d1))
    z = layers.Concatenate(name="concat" if named else None)([branches[p] for p in order])
    head = layers.Dense(classes, activation="softmax", name="head" if named else None)
    model = keras.Model(inputs, head(z))
    # random biases too (Keras starts them at zero, which would hide a bias bug)
    for layer in [l for pair in pairs for l in pair] + [head]:
        k, b = layer.get_weights()
        scale = 1.0 / np.sqrt(k.shape[0])
        layer.set_weights([rng.uniform(-2 * scale, 2 * scale, k.shape).astype(np.float32),
                           rng.uniform(-0.2, 0.2, b.shape).astype(np.float32)])
    return model, order, pairs, head


def numpy_forward(pairs, head, order, in_widths, x):
    """The oracle: float64 forward from the f32 weights. Returns the per-sub-model z_i
    (input order) and the head's kernel with its row blocks put in input order."""
    x = x.astype(np.float64)
    offs = np.concatenate([[0], np.cumsum(in_widths)])
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    zs = []
    for i, (d0, d1) in enumerate(pairs):
        w0, b0 = [v.astype(np.float64) for v in d0.get_weights()]
        w1, b1 = [v.astype(np.float64) for v in d1.get_weights()]
        zs.append(relu(relu(x[:, offs[i]:offs[i + 1]] @ w0 + b0) @ w1 + b1))
    hw, hb = [v.astype(np.float64) for v in head.get_weights()]
    h = zs[0].shape[1]
    blocks = [hw[order.index(i) * h:(order.index(i) + 1) * h] for i in range(len(pairs))]
    return zs, np.concatenate(blocks), hb


def softmax(v):
    v = v - v.max(axis=1, keepdims=True)
    e = np.exp(v)
    return e / e.sum(axis=1, keepdims=True)


def make(name, out_dir, in_widths, hidden, classes, rows, concat_order, named, seed):
    model, order, pairs, head = build(in_widths, hidden, classes, concat_order, named, seed)
    keras_path = os.path.join(out_dir, f"{name}.keras.h5")
    model.save(keras_path)
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(0, 1, (rows, sum(in_widths))).astype(np.float32)
    offs = np.concatenate([[0], np.cumsum(in_widths)])

    zs, hw, hb = numpy_forward(pairs, head, order, in_widths, x)
    z = np.concatenate(zs, axis=1)
    probs = softmax(z @ hw + hb)

    # the blend, literally: z_model = concat over features of M_i(x_i) on the whole
    # batch, z_data = concat over row shards of the whole network; every alpha agrees
    z_model = np.concatenate(zs, axis=1)
    shards = np.array_split(np.arange(rows), 3)
    z_data = np.concatenate([np.concatenate(numpy_forward(pairs, head, order, in_widths, x[s])[0], axis=1)
                             for s in shards])
    for alpha in ALPHAS:
        z_mix = alpha * z_model + (1 - alpha) * z_data
        n_model = int(round(alpha * rows))
        z_split = np.concatenate([z_model[:n_model], z_data[n_model:]])
        for zz in (z_mix, z_split):
            assert np.abs(softmax(zz @ hw + hb) - probs).max() < 1e-12, alpha

    # the oracle agrees with Keras itself
    keras_probs = np.asarray(model.predict([x[:, offs[i]:offs[i + 1]] for i in range(len(in_widths))],
                                           verbose=0))
    err = np.abs(keras_probs - probs).max()
    assert err < 1e-5, f"numpy reference and Keras differ by {err}"

    ref_path = os.path.join(out_dir, f"{name}.ref.h5")
    with h5py.File(ref_path, "w") as f:
        f.create_dataset("x", data=x)
        f.create_dataset("z", data=z.astype(np.float32))
        f.create_dataset("probs", data=probs.astype(np.float32))
        f.attrs["alphas_checked"] = np.array(ALPHAS)
        f.attrs["keras_max_abs_diff"] = err
        f.attrs["source"] = "scripts/make_blend_reference.py"
    print(f"{name}: L={len(in_widths)} in={in_widths} h={hidden} C={classes} B={rows}: "
          f"{keras_path} ({os.path.getsize(keras_path)} bytes), {ref_path}; |keras - numpy| = {err:.2e}")


def read_config(path):
    p = configparser.ConfigParser(inline_comment_prefixes=(";",))
    p.read(path)
    s = p["blend-init"]
    widths = [int(v) for v in s["in-widths"].split(",")]
    assert len(widths) == int(s["submodels"]), "in-widths must list one width per sub-model"
    return dict(in_widths=widths, hidden=int(s["hidden"]), classes=int(s["classes"]), rows=16,
                concat_order=None, named=True, seed=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="an INI like configs/blend_example.ini instead of the fixtures")
    ap.add_argument("--out", default=None, help="output folder (default tests/fixtures/blend)")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(root, "tests", "fixtures", "blend")
    os.makedirs(out, exist_ok=True)
    if args.config:
        name = os.path.splitext(os.path.basename(args.config))[0]
        make(name, out, **read_config(args.config))
    else:
        for name, spec in FIXTURES.items():
            make(name, out, **spec)


if __name__ == "__main__":
    sys.exit(main())
