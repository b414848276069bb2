"""A real tabular set, offline: scikit-learn's bundled breast-cancer data (569
tumours, 30 measurements, malignant or benign). Trains a small MLP on standardised
features (seconds), explains held-out rows with several methods against the
training mean — the data's own baseline, 0 after standardising — and scores each
method by deletion (the most relevant features set to the training mean first;
lower AUC is better) next to a random ranking. Needs scikit-learn
(``pip install scikit-learn``; in the test extra).

    python examples/tabular_breast_cancer.py [--figure features.png]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tf_smoothtaylor as tst  # noqa: E402


def data(seed: int = 0):
    """(train x, train y, test x, test y, feature names), standardised with the
    training rows' mean and standard deviation."""
    from sklearn.datasets import load_breast_cancer
    bundle = load_breast_cancer()
    x, y = bundle.data.astype(np.float32), bundle.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:455], order[455:]
    mean, std = x[train].mean(0), x[train].std(0)
    scale = lambda rows: (rows - mean) / std  # noqa: E731
    return scale(x[train]), y[train], scale(x[test]), y[test], list(bundle.feature_names)


def run(*, epochs: int = 60, seed: int = 0, rows: int = 64):
    """Trains, explains ``rows`` held-out rows; returns accuracy, deletion AUC per
    method (and a random ranking), and the features with the most mean |IG|."""
    x, y, x_test, y_test, names = data(seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    chosen, targets = x_test[:rows], y_test[:rows]
    baseline = np.zeros(30, np.float32)                     # the training mean, standardised
    methods = {
        "IntegratedGradients": tst.IntegratedGradients(model, steps=32, baseline=baseline),
        "Occlusion": tst.Occlusion(model, window=1, baseline=baseline),
        "GradientXInput": tst.GradientXInput(model),
        "SmoothGrad": tst.SmoothGrad(model, num_samples=32, noise_scale=0.3),
    }
    deletion = tst.metrics.Deletion(model, steps=30, replacement=baseline)
    scores, maps = {}, {}
    for name, explainer in methods.items():
        maps[name] = np.asarray(explainer(chosen, targets))
        scores[name] = float(np.mean(deletion(chosen, maps[name], targets).auc))
    random = np.random.default_rng(seed).normal(size=chosen.shape).astype(np.float32)
    scores["random ranking"] = float(np.mean(deletion(chosen, random, targets).auc))
    top = np.argsort(-np.abs(maps["IntegratedGradients"]).mean(0))[:5]
    return {"accuracy": accuracy, "deletion": scores, "top": [names[j] for j in top],
            "maps": maps, "rows": chosen, "names": names}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", default=None, help="write the first rows' bars here")
    args = parser.parse_args()
    result = run()
    print(f"held-out accuracy: {result['accuracy']:.3f}")
    print("deletion AUC of the target logit (lower is better):")
    for name, value in result["deletion"].items():
        print(f"  {name:22s} {value:8.3f}")
    print("largest mean |IG|:", ", ".join(result["top"]))
    if args.figure:
        figure = tst.plot.features(result["maps"]["IntegratedGradients"][:2],
                                   names=result["names"], values=result["rows"][:2], top=8)
        figure.savefig(args.figure, dpi=120)


if __name__ == "__main__":
    main()
