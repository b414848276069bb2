"""Layer attribution against a bare batched gradient loop at the same layer.

A text classifier on token ids (an embedding, two Conv1D blocks, a dense head; the
sizes below) is explained at its embedding output by IntegratedGradients
(``layer="tok"``, M steps per example). The reference is a ``tf.function`` that
takes the same number of gradients of the head with respect to the embeddings in
batches of ``batch_size``, on points it makes itself (the straight-line path);
both evaluate the same layers. Prints gradients per second of each and the ratio
(ours ÷ bare, median over the repetitions, each a pair run back to back).

Usage:
  python benchmarks/layer.py [--tokens 128] [--dim 128] [--steps 64] [--repeats 5]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def text_model(tokens: int, dim: int, vocabulary: int = 20000):
    keras.utils.set_random_seed(0)
    ids = keras.Input((tokens,), dtype="int32")
    x = keras.layers.Embedding(vocabulary, dim, name="tok")(ids)
    head_input = keras.Input((tokens, dim))
    h = keras.layers.Conv1D(dim, 5, padding="same", activation="relu")(head_input)
    h = keras.layers.Conv1D(dim, 5, padding="same", activation="relu")(h)
    head = keras.Model(head_input, keras.layers.Dense(4)(keras.layers.GlobalMaxPooling1D()(h)))
    return keras.Model(ids, head(x)), head


def bare_loop(head, batch: int):
    """Gradients of the head at the path points, in chunks of ``batch``."""

    @tf.function
    def run(vectors, targets, alphas):
        total = tf.zeros_like(vectors)
        for i in range(vectors.shape[0]):
            for start in range(0, alphas.shape[0], batch):
                alpha = alphas[start:start + batch]
                z = alpha[:, None, None] * vectors[i][None]
                with tf.GradientTape() as tape:
                    tape.watch(z)
                    y = head(z, training=False)[:, targets[i]]
                total = tf.tensor_scatter_nd_add(
                    total, [[i]], tf.reduce_sum(tape.gradient(y, z), 0)[None])
        return total

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in dict(tokens=128, dim=128, examples=8, steps=64, batch=64,
                              repeats=5).items():
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    model, head = text_model(args.tokens, args.dim)
    ids = np.random.default_rng(0).integers(1, 20000, (args.examples, args.tokens))
    targets = np.zeros(args.examples, np.int32)
    ig = tst.IntegratedGradients(model, layer="tok", steps=args.steps, rule="riemann_right",
                                 batch_size=args.batch)
    vectors = tf.constant(model.get_layer("tok")(ids))
    alphas = tf.constant(np.arange(1, args.steps + 1, dtype=np.float32) / args.steps)
    bare = bare_loop(head, args.batch)
    ig(ids, targets).numpy()                                    # warm up both
    bare(vectors, targets, alphas).numpy()
    gradients = args.examples * args.steps
    ratios, ours, theirs = [], [], []
    for _ in range(args.repeats):
        t_bare = _common.timed(bare, vectors, targets, alphas)
        t_ours = _common.timed(ig, ids, targets)
        ours.append(gradients / t_ours)
        theirs.append(gradients / t_bare)
        ratios.append(t_bare / t_ours)
    print(f"text model: {args.tokens} tokens × {args.dim}, {args.examples} examples × "
          f"{args.steps} steps, batch {args.batch}, {args.repeats} repeats")
    print(f"bare loop at the layer  {np.median(theirs):8.1f} grad/s")
    print(f"IG layer='tok'          {np.median(ours):8.1f} grad/s  ratio "
          f"{np.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
