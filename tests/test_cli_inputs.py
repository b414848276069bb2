"""The command line on arrays (--inputs): tabular rows from CSV, series from .npz, their
maps against closed forms, labels, resume, the figure, and bad input in one line."""

import io
import json
import os

import keras
import numpy as np
import pytest
from absl.testing import flagsaver

from tf_smoothtaylor.cli import main as cli
from tf_smoothtaylor.data import arrays

from cli_support import parsed_flags  # noqa: F401

RNG = np.random.default_rng(0)
ROWS = RNG.normal(size=(6, 5)).astype(np.float32).round(3)
COLUMNS = ["age", "bmi", "bp", "s1", "s2"]


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    """A linear model f_c = w_c · x on 5 features, and a CSV of 6 labelled rows."""
    folder = tmp_path_factory.mktemp("tabular")
    weights = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False)])
    model.layers[0].set_weights([weights])
    model.save(folder / "linear.keras")
    lines = [",".join(COLUMNS + ["label"])]
    lines += [",".join(str(v) for v in row) + f",{i % 3}" for i, row in enumerate(ROWS)]
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")
    return folder, weights


def _run(mode, **flags):
    with flagsaver.flagsaver(**flags):
        cli.main(["tf-smoothtaylor", mode])


def _error(capsys, *args):
    capsys.readouterr()                              # what earlier runs printed
    with flagsaver.flagsaver(), pytest.raises(SystemExit) as exited:
        cli._main_with_errors(cli._parse_flags(["tf-smoothtaylor", *args]))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exited.value.code == 2 and len(lines) == 1, lines
    return lines[0]


def test_tabular_rows_from_csv_get_x_times_w_and_resume(tabular, capsys, monkeypatch):
    from tf_smoothtaylor.viz import plot
    folder, weights = tabular
    out = folder / "run"
    common = dict(model=str(folder / "linear.keras"), inputs=[str(folder / "rows.csv")],
                  output_dir=str(out), method=["integrated_gradients"])
    _run("evaluate", limit=4, **common)
    drawn = []
    own = plot.features
    monkeypatch.setattr(plot, "features", lambda *a, **k: drawn.append(k) or own(*a, **k))
    _run("evaluate", **common)
    assert drawn[-1]["names"] == COLUMNS                        # the CSV's column names
    assert "2 computed, 4 resumed" in capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    assert [r["label"] for r in records] == [0, 1, 2, 0, 1, 2]
    assert [r["source"].rsplit("#", 1)[1] for r in records] == [str(i) for i in range(6)]
    for i, record in enumerate(records):
        target = record["target"]
        assert target == int(np.argmax(ROWS[i] @ weights))
        files = record["methods"]["integrated_gradients"]["files"]
        assert set(files) == {"npy"}
        maps = np.load(out / files["npy"])
        np.testing.assert_allclose(maps, ROWS[i] * weights[:, target], atol=1e-5)
        np.testing.assert_allclose(np.load(out / record["input_npy"]), ROWS[i])
        # f = w·x, deletion to zero of all 5 features most relevant first: the curve's
        # end is f(0) = 0 and its start f(x); the AUC lies between their extremes.
        assert record["methods"]["integrated_gradients"]["deletion"] is not None
    assert (out / "grid.png").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "deletion ↓" in summary and "insertion ↑" in summary and "AUPC" not in summary


def test_series_from_npz_with_labels(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((24, 2)), keras.layers.Conv1D(4, 5, activation="tanh"),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    model.save(tmp_path / "series.keras")
    series = RNG.normal(size=(3, 24, 2)).astype(np.float32)
    np.savez(tmp_path / "series.npz", x=series, y=np.array([2, 0, 1]))
    _run("explain", model=str(tmp_path / "series.keras"), inputs=[str(tmp_path / "series.npz")],
         output_dir=str(tmp_path / "run"), method=["gradient"])
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "results").glob("*"))]
    assert [r["label"] for r in records] == [2, 0, 1]
    maps = np.stack([np.load(tmp_path / "run" / r["methods"]["gradient"]["files"]["npy"])
                     for r in records])
    assert maps.shape == (3, 24, 2)
    import tensorflow as tf
    x = tf.constant(series)
    with tf.GradientTape() as tape:
        tape.watch(x)
        picked = tf.gather(model(x), [r["target"] for r in records], batch_dims=1)
    np.testing.assert_allclose(maps, tape.gradient(picked, x).numpy(), rtol=1e-4, atol=1e-6)


def test_array_inputs_refused_in_one_line(tabular, tmp_path, capsys):
    folder, _ = tabular
    model = str(folder / "linear.keras")
    rows = str(folder / "rows.csv")
    out = ["--output_dir", str(tmp_path / "o")]
    assert "--inputs FILE" in _error(capsys, "explain", "--model", model, *out)
    assert "--metric aupc: defined on images" in _error(
        capsys, "evaluate", "--model", model, "--inputs", rows, "--metric", "aupc", *out)
    assert "at most one input" in _error(capsys, "explain", "--model", model, "--inputs", rows,
                                         "--images", "a.png", *out)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,x\n")
    assert "line 3: expected numbers" in _error(capsys, "explain", "--model", model,
                                                "--inputs", str(bad), *out)
    assert "input not found" in _error(capsys, "explain", "--model", model, "--inputs",
                                       str(tmp_path / "none.npy"), *out)


def test_array_files_read_as_documented(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4)))
    assert arrays.read(str(tmp_path / "a.npy")).labels.tolist() == [-1, -1, -1]
    np.savez(tmp_path / "two.npz", p=np.ones((2, 2)), q=np.ones((2, 2)))
    with pytest.raises(ValueError, match="named 'x'"):
        arrays.read(str(tmp_path / "two.npz"))
    np.save(tmp_path / "nan.npy", np.array([[1.0, 2.0], [np.nan, 1.0], [1.0, np.inf]]))
    with pytest.raises(ValueError, match=r"rows \[1, 2\] hold NaN"):
        arrays.read(str(tmp_path / "nan.npy"))
    np.savez(tmp_path / "labels.npz", x=np.ones((2, 3)), y=np.array([0.5, 1]))
    with pytest.raises(ValueError, match="one integer label per row"):
        arrays.read(str(tmp_path / "labels.npz"))
    with pytest.raises(ValueError, match=".npy, .npz, .csv, .txt"):
        arrays.read(str(tmp_path / "rows.json"))
    with pytest.raises(ValueError, match="needs --vocabulary"):
        arrays.read(str(tmp_path / "rows.txt"))


def test_texts_through_a_vocabulary_are_explained_at_the_embedding_layer(tmp_path, capsys):
    from tf_smoothtaylor.demo import tasks
    tasks.load("text").save(tmp_path / "text.keras")
    (tmp_path / "vocab.txt").write_text("\n".join(tasks.VOCABULARY) + "\n")
    (tmp_path / "reviews.txt").write_text("The movie was GREAT\n\nawful plot and bad cast\n")
    common = dict(model=str(tmp_path / "text.keras"), inputs=[str(tmp_path / "reviews.txt")],
                  vocabulary=str(tmp_path / "vocab.txt"), output_dir=str(tmp_path / "run"))
    _run("evaluate", method=["integrated_gradients"], layer="embedding", **common)
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "results").glob("*"))]
    assert [r["target"] for r in records] == [1, 0]
    ids = [np.load(tmp_path / "run" / r["input_npy"]) for r in records]
    words = [[tasks.VOCABULARY[int(i)] for i in row] for row in ids]
    assert words[0][:6] == ["the", "movie", "was", "great", "[PAD]", "[PAD]"]
    assert words[1][:6] == ["awful", "plot", "and", "bad", "cast", "[PAD]"]
    for record, expected in zip(records, ([3], [0, 3])):
        maps = np.load(tmp_path / "run" / record["methods"]["integrated_gradients"]["files"]
                       ["npy"])
        assert maps.shape == (tasks.LENGTH, 8)
        assert int(np.argmax(np.abs(maps.sum(-1)))) in expected          # a keyword
        assert record["methods"]["integrated_gradients"]["deletion"] is not None
    assert (tmp_path / "run" / "grid.png").stat().st_size > 1000
    (tmp_path / "odd.txt").write_text("the movie was great.\n")
    assert "text 1: '.' is not in the vocabulary" in _error(
        capsys, "explain", "--model", common["model"], "--inputs", str(tmp_path / "odd.txt"),
        "--vocabulary", common["vocabulary"], "--layer", "embedding",
        "--output_dir", str(tmp_path / "o"))
    assert "--layer embedding" in _error(
        capsys, "explain", "--model", common["model"], "--inputs", common["inputs"][0],
        "--vocabulary", common["vocabulary"], "--output_dir", str(tmp_path / "o"))


def test_layer_with_images_is_for_grad_cam(capsys, tmp_path):
    assert "--layer with images applies to Grad-CAM" in _error(
        capsys, "explain", "--method", "integrated_gradients", "--layer", "conv2d",
        "--output_dir", str(tmp_path / "o"))
