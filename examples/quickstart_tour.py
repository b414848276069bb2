# %% [markdown]
# # tf_smoothtaylor: a tour with figures
#
# Runs offline in half a minute on a CPU: the bundled demo model (a small CNN on
# 64×64 shapes), then a Keras Application with random weights. The same cells are
# `examples/quickstart.ipynb`; run this file with `python examples/quickstart_tour.py`
# to get the figures as PNG files in `quickstart_figures/`.

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

import tf_smoothtaylor as tst
from tf_smoothtaylor.metrics.settings import fitted_settings

FIGURES = "quickstart_figures"
os.makedirs(FIGURES, exist_ok=True)
spec = tst.demo.load()                       # the model with its pixel transforms
pixels, labels, masks, names = tst.demo.samples()
pixels = pixels[[0, 5]]                      # two shapes, pixels in [0, 1]
x = spec.preprocess(pixels)                  # model inputs
logits = spec.model(x).numpy()
print("classes:", spec.class_names, "predicted:", logits.argmax(axis=1))

# %% [markdown]
# ## SmoothTaylor, Integrated Gradients and Grad-CAM side by side
#
# Each map is drawn over the image in grey: red is evidence for the class, blue
# against; each colour bar gives the map's scale (its 99.5th percentile of |h|).

# %%
explainers = {"SmoothTaylor": tst.SmoothTaylor(spec, num_roots=64, noise_scale=0.5),
              "IntegratedGradients": tst.IntegratedGradients(spec, steps=32),
              "GradCAM": tst.GradCAM(spec)}
maps = {name: tst.heatmap(explainer(x)).numpy() for name, explainer in explainers.items()}
figure = tst.plot.attributions(pixels, maps, labels=logits.argmax(axis=1),
                               scores=logits.max(axis=1), score_name="logit",
                               class_names=spec.class_names)
figure.savefig(os.path.join(FIGURES, "attributions.png"), dpi=120)
figure

# %% [markdown]
# ## How precise is a SmoothTaylor map?
#
# `return_error=True` gives each map's relative Monte Carlo error, ‖SE(h)‖ / ‖h‖;
# `num_roots="auto"` draws roots until it reaches a target.

# %%
estimate = explainers["SmoothTaylor"](x, return_error=True)
print("relative error per map:", np.round(estimate.relative_error.numpy(), 3))
auto = tst.SmoothTaylor(spec, num_roots="auto", target_error=0.3, noise_scale=0.5)
estimate = auto(x, return_error=True)
print("'auto' roots per image:", estimate.num_points,
      "relative error:", np.round(estimate.relative_error.numpy(), 3))

# %% [markdown]
# ## Scores: AUPC (sensitivity, lower is better) and AUTVC (noise, lower is better)

# %%
settings = fitted_settings(*pixels.shape[1:3])             # the paper's, scaled to 64 px
settings["aupc"].update(num_regions=16, num_copies=20)     # the command line's for the demo
metric = tst.metrics.AUPC(spec, **settings["aupc"])        # one compiled metric, every map
aupc = {name: metric(x, m) for name, m in maps.items()}
autvc = {name: tst.metrics.autvc(m, **settings["autvc"]).numpy() for name, m in maps.items()}
print(f"{'method':22s} {'AUPC':>8s} {'AUTVC':>8s}")
for name in maps:
    print(f"{name:22s} {aupc[name].aupc.numpy().mean():8.3f} {autvc[name].mean():8.3f}")
figure = tst.plot.curves(aupc, name="AUPC", x_label="regions perturbed")
figure.savefig(os.path.join(FIGURES, "aupc_curves.png"), dpi=120)
figure

# %% [markdown]
# ## Text, tabular rows and series
#
# The same methods on inputs that are not images, with the ground-truth tasks'
# small models (`tst.demo.tasks`): a text explained at its embedding layer, one
# score per token; tabular rows against a reference set's mean; a series with its
# relevance per time step as a coloured band.

# %%
from tf_smoothtaylor.demo import tasks

text = tasks.generate("text", 2, seed=3)
ig = tst.IntegratedGradients(tasks.load("text"), steps=32, layer="embedding")
scores = tst.position_scores(ig(text.inputs, text.labels))     # (texts, tokens)
words = [[tasks.VOCABULARY[i] for i in row] for row in text.inputs]
figure = tst.plot.tokens(words, scores, labels=[f"label {y}" for y in text.labels])
figure.savefig(os.path.join(FIGURES, "tokens.png"), dpi=120)
figure

# %%
rows = tasks.generate("tabular", 64, seed=3)
baseline = rows.inputs.mean(axis=0)                            # the data's own terms
ig = tst.IntegratedGradients(tasks.load("tabular"), steps=32, baseline=baseline)
attributions = ig(rows.inputs[:2], rows.labels[:2])
print("relevant features:", tasks.RELEVANT_FEATURES)
figure = tst.plot.features(attributions, values=rows.inputs[:2], top=5)
figure.savefig(os.path.join(FIGURES, "features.png"), dpi=120)
figure

# %%
series = tasks.generate("series", 2, seed=3)
ig = tst.IntegratedGradients(tasks.load("series"), steps=32)
figure = tst.plot.series(series.inputs, tst.heatmap(ig(series.inputs, series.labels)))
figure.savefig(os.path.join(FIGURES, "series.png"), dpi=120)
figure

# %% [markdown]
# ## A Keras Application
#
# `weights=None` keeps this offline; with network access use `weights="imagenet"`
# (the one-line change) for real maps. Random weights give tiny, unstructured maps.

# %%
model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3),
                                       classifier_activation=None)
images = np.asarray(keras.ops.image.resize(pixels, (96, 96)))   # ImageNet weights: 96–224 px
inputs = keras.applications.mobilenet_v2.preprocess_input(images * 255.0)
explainer = tst.SmoothTaylor(model, num_roots=16, noise_scale=0.5, batch_size=16)
figure = tst.plot.attributions(images, {"SmoothTaylor": tst.heatmap(explainer(inputs))},
                               sign="absolute")
figure.savefig(os.path.join(FIGURES, "mobilenet_v2.png"), dpi=120)
figure
