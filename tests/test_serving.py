"""SavedModel export: run in a fresh process the way TF Serving loads it."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tf_smoothtaylor as tst
from tf_smoothtaylor import demo, serving
from tf_smoothtaylor.data import decode_and_crop

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
SETTINGS = dict(num_roots=8, noise_scale=0.5, seed=4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("export") / "model")
    serving.export(demo.load(), directory, crop=False, include_attributions=True, max_batch=4,
                   **SETTINGS)
    return directory


@pytest.fixture(scope="module")
def loaded(exported):
    """The export, loaded once per module (each load costs a second or two)."""
    return tf.saved_model.load(exported)


@pytest.fixture(scope="module")
def encoded():
    pixels = demo.samples()[0][:2]
    as_bytes = np.round(pixels * 255).astype(np.uint8)
    return {"png": [tf.io.encode_png(p).numpy() for p in as_bytes],
            "jpeg": [tf.io.encode_jpeg(p, quality=95).numpy() for p in as_bytes]}


def saved_model_cli(*args):
    command = [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), *args]
    if not os.path.exists(command[0]):
        command = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def python_api(images_bytes):
    spec = demo.load()
    pixels = tf.stack([decode_and_crop(b, size=64, resize=None) for b in images_bytes])
    inputs = spec.preprocess(pixels)
    logits = spec.model(inputs).numpy()
    attributions = tst.SmoothTaylor(spec, **SETTINGS)(inputs)
    return logits, tst.heatmap(attributions).numpy(), attributions.numpy()


def test_saved_model_cli_run_matches_the_python_api(exported, encoded, tmp_path):
    """One request holding a PNG and a JPEG, run by saved_model_cli in a fresh process
    (as TF Serving loads the model)."""
    request = [encoded["png"][0], encoded["jpeg"][1]]
    np.save(tmp_path / "bytes.npy", np.array(request, dtype=object))
    result = saved_model_cli("run", "--dir", exported, "--tag_set", "serve", "--signature_def",
                             "serving_default", "--inputs", f"image_bytes={tmp_path}/bytes.npy",
                             "--outdir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    logits, heatmaps, _ = python_api(request)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "heatmap.npy"), heatmaps, atol=1e-4)
    classes = np.load(tmp_path / "out" / "classes.npy")
    np.testing.assert_array_equal(classes[:, 0], np.argmax(logits, -1))
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "target.npy"), np.argmax(logits, -1))
    np.testing.assert_allclose(np.load(tmp_path / "out" / "scores.npy")[:, 0],
                               tf.reduce_max(tf.nn.softmax(logits), -1), rtol=1e-5)


def test_saved_model_load_gives_the_same(loaded, encoded):
    logits, heatmaps, attributions = python_api(encoded["png"])
    out = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded["png"]))
    np.testing.assert_allclose(out["heatmap"], heatmaps, atol=1e-4)
    np.testing.assert_allclose(out["attributions"], attributions, atol=1e-4)
    chosen = loaded.signatures["explain_bytes"](image_bytes=tf.constant(encoded["png"]),
                                                target=tf.constant([1, 3]))
    assert chosen["target"].numpy().tolist() == [1, 3]
    pixels = tf.stack([decode_and_crop(b, size=64, resize=None) for b in encoded["png"]])
    same = loaded.signatures["explain_pixels"](pixels=pixels, target=tf.constant([-1, -1]))
    np.testing.assert_allclose(same["heatmap"], heatmaps, atol=1e-4)


def test_the_meta_graph_lists_the_signatures(exported):
    """What ``saved_model_cli show`` and TF Serving read: the "serve" meta graph's
    signature defs (read in this process; ``run`` above starts the tool itself)."""
    from tensorflow.python.tools import saved_model_utils
    meta_graph = saved_model_utils.get_meta_graph_def(exported, "serve")
    assert {"serving_default", "explain_bytes", "explain_pixels"} <= set(
        meta_graph.signature_def)
    inputs = meta_graph.signature_def["serving_default"].inputs
    assert list(inputs) == ["image_bytes"] and inputs["image_bytes"].dtype == tf.string.as_datatype_enum


BAD_REQUESTS = [([b"definitely not an image"], "Unknown image file format"),
                ([b""], "empty image bytes"),
                ([b"x"] * 5, "request too large")]


def test_a_bad_request_is_rejected_in_a_fresh_process(exported, tmp_path):
    payload, message = BAD_REQUESTS[0]
    np.save(tmp_path / "bad.npy", np.array(payload, dtype=object))
    result = saved_model_cli("run", "--dir", exported, "--tag_set", "serve", "--signature_def",
                             "serving_default", "--inputs", f"image_bytes={tmp_path}/bad.npy")
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("payload,message", BAD_REQUESTS)
def test_bad_requests_are_rejected_with_their_reason(loaded, payload, message):
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant(payload))


def test_out_of_range_target_and_pixels(loaded):
    pixels = tf.fill([1, 64, 64, 3], 0.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="target is not a class index"):
        loaded.signatures["explain_pixels"](pixels=pixels, target=tf.constant([9]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 1\]"):
        loaded.signatures["explain_pixels"](pixels=pixels * 300, target=tf.constant([-1]))


@pytest.mark.parametrize("pixels,target,message", [
    (np.zeros((0, 64, 64, 3), np.float32), np.zeros(0, np.int32), "empty request"),
    (np.full((2, 64, 64, 3), 0.5, np.float32), np.array([1, 2, 3], np.int32),
     "one class per image"),
    (np.full((1, 64, 64, 3), 0.5, np.float32), np.array([-2], np.int32),
     "target is not a class index"),
])
def test_requests_at_the_edges_are_invalid_arguments_naming_the_problem(
        loaded, pixels, target, message):
    """An empty batch, a target list of the wrong length and a target below −1 (the
    one sentinel, "the predicted class") are INVALID_ARGUMENT naming the problem."""
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["explain_pixels"](pixels=tf.constant(pixels),
                                            target=tf.constant(target))
    if message == "empty request":
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["serving_default"](image_bytes=tf.constant([], tf.string))


def test_a_target_list_of_the_wrong_length_is_refused_in_a_fresh_process(exported, tmp_path):
    """The same through saved_model_cli, as TF Serving loads the model."""
    np.save(tmp_path / "pixels.npy", np.full((2, 64, 64, 3), 0.5, np.float32))
    np.save(tmp_path / "target.npy", np.array([1, 2, 3], np.int32))
    result = saved_model_cli("run", "--dir", exported, "--tag_set", "serve", "--signature_def",
                             "explain_pixels", "--inputs",
                             f"pixels={tmp_path}/pixels.npy;target={tmp_path}/target.npy")
    assert result.returncode != 0
    assert "target must hold one class per image" in result.stderr


def test_export_mode_of_the_command_line(tmp_path):
    from absl.testing import flagsaver
    from tf_smoothtaylor.cli import main as cli
    argv = ["tf-smoothtaylor", "export", "--output_dir", str(tmp_path / "m"), "--method",
            "integrated_gradients", "--steps", "4", "--top_k", "2", "--max_batch", "3",
            "--include_attributions"]
    with flagsaver.flagsaver():
        cli._main_with_errors(cli._parse_flags(argv))      # the command, in this process
    serve = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    png = tf.io.encode_png(tf.zeros([64, 64, 3], tf.uint8))
    out = serve(image_bytes=tf.stack([png, png]))
    assert out["classes"].shape == (2, 2) and out["attributions"].shape == (2, 64, 64, 3)
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(image_bytes=tf.stack([png] * 4))


def test_bad_export_arguments(tmp_path):
    with pytest.raises(TypeError, match="ModelSpec"):
        serving.export(demo.load().model, str(tmp_path / "a"))
    with pytest.raises(ValueError, match="method"):
        serving.export(demo.load(), str(tmp_path / "b"), method="deconvnet")
    with pytest.raises(ValueError, match=r"no method settings.*\['num_roots'\]"):
        spec = demo.load()
        serving.export(spec, str(tmp_path / "d"), method=tst.SmoothTaylor(spec), num_roots=5)
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="not to exist"):
        serving.export(demo.load(), str(tmp_path / "c"))


def test_serving_client_example(exported, encoded, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    image = tmp_path / "image.png"
    image.write_bytes(encoded["png"][0])
    command = [sys.executable, os.path.join(root, "examples", "serving_client.py"),
               "--image", str(image)]
    env = dict(ENV, PYTHONPATH=root)
    body = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert body.returncode == 0 and '"instances": [{"b64": "' in body.stdout
    local = subprocess.run(command + ["--export_dir", exported, "--target", "2", "--heatmap",
                                      str(tmp_path / "h.png")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr[-2000:]
    assert "explained class 2, heatmap (64, 64)" in local.stdout
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "h.png"))).shape == (64, 64, 3)


def test_an_explainer_exports_with_its_settings_on_a_non_square_model(tmp_path):
    """export(explainer, dir): the explainer's method and settings, its ModelSpec's
    transforms; a 12 × 16 input is decoded by covering it, then centre-cropping."""
    import keras
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((12, 16, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    spec = tst.models.wrap(model, preprocess=lambda p: 2.0 * p - 1.0,
                           deprocess=lambda x: (x + 1.0) / 2.0)
    explainer = tst.SmoothGrad(spec, num_samples=5, noise_scale=0.2, seed=7)
    directory = serving.export(explainer, str(tmp_path / "model"), include_error=True)
    loaded = tf.saved_model.load(directory)
    pixels = np.random.default_rng(0).uniform(0, 1, (2, 12, 16, 3)).astype(np.float32)
    out = loaded.signatures["explain_pixels"](pixels=tf.constant(pixels),
                                              target=tf.constant([1, 2], tf.int32))
    estimate = explainer(spec.preprocess(pixels), [1, 2], return_error=True)
    np.testing.assert_allclose(out["heatmap"], tst.heatmap(estimate.attributions), atol=1e-5)
    np.testing.assert_allclose(out["relative_error"], estimate.relative_error, rtol=1e-4)
    photo = np.round(np.random.default_rng(1).uniform(0, 255, (30, 20, 3))).astype(np.uint8)
    served = loaded.signatures["serving_default"](
        image_bytes=tf.constant([tf.io.encode_png(photo).numpy()]))
    assert served["heatmap"].shape == (1, 12, 16)
    decoded = decode_and_crop(tf.io.encode_png(photo), size=(12, 16), resize=14)
    assert decoded.shape == (12, 16, 3)
    np.testing.assert_allclose(served["heatmap"][0], tst.heatmap(explainer(
        spec.preprocess(decoded[None])))[0], atol=1e-5)
    with pytest.raises(ValueError, match="no `method`"):
        serving.export(explainer, str(tmp_path / "again"), method="gradient")
    with pytest.raises(TypeError, match="ModelSpec"):
        serving.export(tst.Gradient(model), str(tmp_path / "bare"))
    with pytest.raises(ValueError, match="Monte Carlo"):
        serving.export(tst.Gradient(spec), str(tmp_path / "exact"), include_error=True)


def test_export_flag_include_error_serves_the_relative_error(tmp_path):
    from absl import flags
    from absl.testing import flagsaver
    from tf_smoothtaylor.cli import main as cli
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(output_dir=str(tmp_path / "m"), method=["smooth_taylor"],
                             num_roots=5, include_error=True):
        cli.main(["tf-smoothtaylor", "export"])
    serve = tf.saved_model.load(str(tmp_path / "m")).signatures["explain_pixels"]
    pixels = demo.samples()[0][:2]
    out = serve(pixels=tf.constant(pixels), target=tf.constant([0, 1], tf.int32))
    spec = demo.load()
    expected = tst.SmoothTaylor(spec, num_roots=5, batch_size=64)(
        spec.preprocess(pixels), [0, 1], return_error=True).relative_error
    np.testing.assert_allclose(out["relative_error"], expected, rtol=1e-4)
