"""The tf-smoothtaylor command's models: files in safe mode, SavedModels and their op scan,
custom layers, preprocessing, other file systems."""

import csv
import os
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver

from tf_smoothtaylor import demo
from tf_smoothtaylor.cli import main as cli

from cli_support import FLAGS, parsed_flags  # noqa: F401


def test_model_files_load_in_safe_mode_unless_allowed(tmp_path, capsys):
    import keras
    inputs = keras.Input((64, 64, 3))
    scaled = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(scaled))
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    args = ["explain", "--model", path, "--images", demo.sample_paths()[0], "--method",
            "gradient"]
    with flagsaver.flagsaver(), pytest.raises(SystemExit) as exited:
        cli._main_with_errors(cli._parse_flags(
            ["tf-smoothtaylor", *args, "--output_dir", str(tmp_path / "a")]))
    stderr = capsys.readouterr().err
    assert exited.value.code == 2 and "--unsafe_load" in stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) == 1
    with flagsaver.flagsaver(output_dir=str(tmp_path / "b"), model=path, unsafe_load=True,
                             images=[demo.sample_paths()[0]], method=["gradient"]):
        cli.main(["tf-smoothtaylor", "explain"])                 # allowed, in this process
    assert len(list((tmp_path / "b" / "results").glob("*.json"))) == 1


def test_model_flag_takes_a_savedmodel_directory(tmp_path):
    import tf_smoothtaylor as tst
    from conftest import small_cnn
    from tf_smoothtaylor.cli import commands
    x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype(np.float32)
    for activation in (None, "softmax"):
        model = small_cnn(activation=activation)
        directory = str(tmp_path / f"classifier_{activation}")
        model.export(directory, verbose=False)
        with flagsaver.flagsaver(model=directory, preprocess="identity"):
            loaded = commands.load_spec(FLAGS).model
        np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
        if activation is None:
            np.testing.assert_allclose(tst.Gradient(loaded)(x, targets=1),
                                       tst.Gradient(model)(x, targets=1), atol=1e-6)
        else:   # a softmax inside a SavedModel cannot be removed: the user is told
            with pytest.warns(UserWarning, match="softmax"):
                tst.Gradient(loaded)(x, targets=1)


def test_preprocess_identity_keeps_pixels_and_scale255_multiplies(tmp_path):
    from tf_smoothtaylor.cli import commands
    import keras
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    pixels = np.full((1, 64, 64, 3), 0.5, np.float32)
    for mode, factor in (("identity", 1.0), ("scale255", 255.0)):
        with flagsaver.flagsaver(model=path, preprocess=mode):
            spec = commands.load_spec(FLAGS)
        np.testing.assert_allclose(spec.preprocess(pixels), pixels * factor)
    assert "none" not in FLAGS["preprocess"].parser.enum_values


def test_a_multi_input_model_file_is_refused_with_the_way_out(tmp_path):
    import keras
    image, meta = keras.Input((8, 8, 3), name="image"), keras.Input((2,), name="meta")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    path = str(tmp_path / "two_inputs.keras")
    keras.Model([image, meta], keras.layers.Dense(3)(joined)).save(path)
    with flagsaver.flagsaver(output_dir=str(tmp_path / "out"), model=path):
        with pytest.raises(ValueError, match=r"2 inputs \['image', 'meta'\].*select_input"):
            cli.main(["tf-smoothtaylor", "explain"])


def test_a_non_square_model_file_explains_and_scores(tmp_path):
    """A (32, 48, 3) .keras model: images are cropped to 32 × 48 and the maps are."""
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 48, 3)),
                              keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    path = str(tmp_path / "wide.keras")
    model.save(path)
    with flagsaver.flagsaver(output_dir=str(tmp_path / "out"), model=path,
                             images=demo.sample_paths()[:2], method=["gradient", "rise"],
                             num_masks=16, metric=["autvc"], min_size=4):
        cli.main(["tf-smoothtaylor", "evaluate"])
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
    assert len(rows) == 4 and all(np.isfinite(float(row["autvc"])) for row in rows)
    for row in csv.DictReader(open(tmp_path / "out" / "index.csv")):
        assert np.load(tmp_path / "out" / row["npy"]).shape == (32, 48, 3)


def test_model_weights_references_and_images_on_another_file_system(tmp_path):
    """Model files, weights, --references and image patterns go through TensorFlow's
    file systems (here ``ram://``; on a cluster ``gs://`` or ``hdfs://``): a run on
    them equals the run on local copies."""
    import keras
    import tensorflow as tf
    from tf_smoothtaylor import models
    from tf_smoothtaylor.cli import commands
    from tf_smoothtaylor.cli.config import RunConfig
    remote = f"ram://{tmp_path.name}"
    inputs = keras.Input((64, 64, 3))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(hidden))
    keras.Model(inputs, outputs).save(str(tmp_path / "model.keras"))
    tf.io.gfile.makedirs(remote + "/images")
    tf.io.gfile.copy(str(tmp_path / "model.keras"), remote + "/model.keras")
    for path in demo.sample_paths()[:2]:
        tf.io.gfile.copy(path, f"{remote}/images/{os.path.basename(path)}")
    runs = {}
    for where, model, images in (
            ("local", str(tmp_path / "model.keras"), [p for p in demo.sample_paths()[:2]]),
            ("remote", remote + "/model.keras", [remote + "/images/*.png"])):
        with flagsaver.flagsaver(output_dir=str(tmp_path / where), model=model, images=images,
                                 references=images, method=["expected_gradients"],
                                 num_samples=4):
            cli.main(["tf-smoothtaylor", "explain"])
        runs[where] = sorted((tmp_path / where / "maps").glob("*.npy"))
    assert [p.name for p in runs["local"]] == [p.name for p in runs["remote"]]
    assert len(runs["local"]) == 2
    for local, other in zip(runs["local"], runs["remote"]):
        np.testing.assert_array_equal(np.load(local), np.load(other))
    # A registry model's weights file.
    built = models.load("mobilenet_v2", weights=None, input_size=32)
    built.model.save_weights(str(tmp_path / "m.weights.h5"))
    tf.io.gfile.copy(str(tmp_path / "m.weights.h5"), remote + "/m.weights.h5")
    loaded = commands.load_spec(RunConfig(output_dir="unused", model="mobilenet_v2",
                                          weights=remote + "/m.weights.h5", size=32))
    for mine, theirs in zip(loaded.model.weights, built.model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_a_savedmodel_whose_graph_touches_files_is_refused_unless_unsafe_load(tmp_path):
    """The serving signature's ops are read from saved_model.pb before anything runs:
    a graph that writes a file is refused naming the op and its function, and the
    file is not written; a Keras export (whose checkpoint functions hold SaveV2,
    unreached from the signature) loads; with --unsafe_load the writer loads too."""
    from conftest import small_cnn
    from tf_smoothtaylor.cli import commands, savedmodel
    written = tmp_path / "written.txt"

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 12, 12, 3])])
        def serve(self, x):
            tf.io.write_file(str(written), "payload")
            return {"logits": tf.reduce_sum(x, axis=[1, 2])}

    writer = Writer()
    bad = str(tmp_path / "writer")
    tf.saved_model.save(writer, bad, signatures={"serving_default": writer.serve})
    good = str(tmp_path / "classifier")
    small_cnn().export(good, verbose=False)
    good_ops = {op for op, _ in savedmodel.reached_ops(good)}
    assert "Conv2D" in good_ops and not good_ops & savedmodel.UNSAFE_OPS
    assert ("WriteFile", "graph") not in savedmodel.reached_ops(bad)
    assert any(op == "WriteFile" for op, _ in savedmodel.reached_ops(bad))
    with flagsaver.flagsaver(model=bad, preprocess="identity"):
        with pytest.raises(ValueError, match=r"WriteFile \(in __inference_serve.*"
                                             r"--unsafe_load"):
            commands.load_spec(FLAGS)
    assert not written.exists()
    with flagsaver.flagsaver(model=good, preprocess="identity"):
        assert commands.load_spec(FLAGS).model.output_shape == (None, 5)
    with flagsaver.flagsaver(model=bad, preprocess="identity", unsafe_load=True):
        commands.load_spec(FLAGS).model(np.zeros((1, 12, 12, 3), np.float32))
    assert written.read_text() == "payload"
    with pytest.raises(ValueError, match="not a readable SavedModel"):
        savedmodel.reached_ops(str(tmp_path))


def test_custom_objects_load_a_model_with_a_custom_layer_and_name_it_when_missing(tmp_path):
    """A .keras model with a registered custom layer: without the module that defines
    it the error is one line naming the class and --custom_objects; with
    --custom_objects (a .py file, or a module name) the model loads and computes what
    it computed when saved."""
    import importlib
    from tf_smoothtaylor.cli import commands
    source = tmp_path / "tst_custom_layers.py"
    source.write_text(textwrap.dedent("""
        import keras

        @keras.saving.register_keras_serializable(package="tst_custom")
        class Doubling(keras.layers.Layer):
            def call(self, x):
                return 2.0 * x
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        layers = importlib.import_module("tst_custom_layers")
        inputs = keras.Input((12, 12, 3))
        hidden = keras.layers.Conv2D(4, 3)(layers.Doubling()(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(hidden)))
        path = str(tmp_path / "custom.keras")
        model.save(path)
        x = np.random.default_rng(0).uniform(size=(2, 12, 12, 3)).astype(np.float32)
        registry = keras.saving.get_custom_objects()
        for entry in (str(source), "tst_custom_layers"):
            registry.pop("tst_custom>Doubling", None)
            sys.modules.pop("tst_custom_layers", None)
            with flagsaver.flagsaver(model=path, preprocess="identity"):
                with pytest.raises(ValueError, match=r"^--model .*custom\.keras uses "
                                                     r"'Doubling'.*--custom_objects"):
                    commands.load_spec(FLAGS)
            with flagsaver.flagsaver(model=path, preprocess="identity", custom_objects=[entry]):
                loaded = commands.load_spec(FLAGS).model
            np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
        with flagsaver.flagsaver(model=path, custom_objects=[str(tmp_path / "none.py")]):
            with pytest.raises(ValueError, match="--custom_objects file not found"):
                commands.load_spec(FLAGS)
        with flagsaver.flagsaver(model=path, custom_objects=["no_such_module_here"]):
            with pytest.raises(ValueError, match="--custom_objects no_such_module_here could "
                                                 "not be imported"):
                commands.load_spec(FLAGS)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tst_custom_layers", None)
