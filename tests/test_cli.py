"""The tf-smoothtaylor command: modes, errors, resuming after a kill."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

import tf_smoothtaylor as tst
from tf_smoothtaylor import demo
from tf_smoothtaylor.cli import main as cli
from tf_smoothtaylor.cli import runs

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    yield


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tf_smoothtaylor", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_explain_writes_maps_pngs_and_index(tmp_path):
    images = demo.sample_paths()[:3]
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=images,
                             method=["gradient", "integrated_gradients"], steps=8):
        cli.main(["tf-smoothtaylor", "explain"])
    with open(tmp_path / "index.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"gradient", "integrated_gradients"}
    assert not (tmp_path / "metrics.csv").exists()            # explain scores nothing
    for row in rows:
        attributions = np.load(tmp_path / row["npy"])
        assert attributions.shape == (64, 64, 3) and np.abs(attributions).max() > 0
        for column in ("heatmap_png", "overlay_png"):
            png = tf.io.decode_png(tf.io.read_file(str(tmp_path / row[column])))
            assert png.shape == (64, 64, 3)
    # grid.png: every image (3 rows) × (image + 2 methods), 2.6 in at 100 dpi each.
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "grid.png"))).shape[:2] == (780, 780)
    # The same figure from the run directory: the saved maps, titled with the targets.
    from tf_smoothtaylor import plot
    figure = plot.run(str(tmp_path), max_images=2)
    grid = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert [axis.get_title() for axis in grid[:3]] == [
        rows[0]["target"], "gradient", "integrated_gradients"]
    shown = grid[1].get_images()[-1].get_array()
    np.testing.assert_allclose(shown, np.load(tmp_path / rows[0]["npy"]).sum(-1), rtol=1e-5,
                               atol=1e-8)
    # The saved map is what the library computes for the same image and class.
    spec = demo.load()
    pixels = demo.samples()[0][:1]
    from tf_smoothtaylor import Gradient
    expected = Gradient(spec)(spec.preprocess(pixels), targets=int(rows[0]["target"]))
    np.testing.assert_allclose(np.load(tmp_path / rows[0]["npy"]), expected[0], atol=1e-5)


def test_runs_key_each_image_by_its_id(tmp_path):
    images = demo.sample_paths()[:2]
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=images,
                             method=["smooth_taylor"], num_roots=6):
        cli.main(["tf-smoothtaylor", "explain"])
    with open(tmp_path / "index.csv") as handle:
        rows = list(csv.DictReader(handle))
    spec = demo.load()
    x = spec.preprocess(demo.samples()[0][:2])
    targets = [int(row["target"]) for row in rows]
    explainer = tst.SmoothTaylor(spec, num_roots=6, noise_scale=0.5)
    by_id = explainer(x, targets, keys=[runs.id_key(row["id"]) for row in rows]).numpy()
    for i, row in enumerate(rows):
        np.testing.assert_allclose(np.load(tmp_path / row["npy"]), by_id[i], atol=1e-5)
    by_content = explainer(x, targets).numpy()
    assert np.abs(by_content - by_id).max() > 1e-3
    # Each record keeps the map's Monte Carlo precision, as return_error gives it.
    estimate = explainer(x, targets, keys=[runs.id_key(row["id"]) for row in rows],
                         return_error=True)
    for i, row in enumerate(rows):
        record = json.loads((tmp_path / "results" / f"{row['id']}.json").read_text())
        entry = record["methods"]["smooth_taylor"]
        assert entry["num_points"] == 6
        assert entry["relative_error"] == pytest.approx(float(estimate.relative_error[i]),
                                                        rel=1e-4)


def test_evaluate_reports_metrics_and_relevance_mass(tmp_path, capsys):
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=demo.sample_paths()[:4],
                             method=["gradient", "smooth_taylor"], num_roots=8,
                             num_copies=4, num_regions=4):
        cli.main(["tf-smoothtaylor", "evaluate"])
    printed = capsys.readouterr().out
    assert "| smooth_taylor |" in printed and "relevance_mass" in printed
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    for row in rows:
        assert 0.0 <= float(row["relevance_mass"]) <= 1.0
        assert np.isfinite(float(row["aupc"])) and float(row["autvc"]) > 0
    assert (tmp_path / "summary.md").read_text().startswith("| method | aupc")


def test_evaluate_with_deletion_and_insertion_matches_the_library(tmp_path):
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=demo.sample_paths()[:3],
                             method=["gradient"], metric=["deletion", "insertion"],
                             images_per_step=2):
        cli.main(["tf-smoothtaylor", "evaluate"])
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and "aupc" not in rows[0]
    import tf_smoothtaylor as tst
    spec = demo.load()
    x = spec.preprocess(demo.samples()[0][:3])
    targets = [int(row["target"]) for row in rows]
    maps = tst.heatmap(tst.Gradient(spec)(x, targets=targets))
    for name, curve in (("deletion", tst.metrics.deletion), ("insertion", tst.metrics.insertion)):
        np.testing.assert_allclose([float(row[name]) for row in rows],
                                   curve(spec, x, maps, targets=targets).auc, rtol=1e-4)


def test_adapt_records_sigma_per_image(tmp_path):
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=demo.sample_paths()[:2],
                             objective="autvc", num_roots=4, max_iterations=2):
        cli.main(["tf-smoothtaylor", "adapt"])
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results").glob("*.json"))]
    assert len(records) == 2
    rescored = []
    for record in records:
        entry = record["methods"]["adaptive_autvc"]
        assert entry["noise_scale"] > 0 and entry["autvc_best"] > 0
        assert entry["autvc"] != entry["autvc_best"]          # fresh roots, not the best
        rescored.append(entry["autvc"])
    # summary.md reports the re-scored objective; metrics.csv keeps the best, labelled.
    assert f"{np.mean(rescored):.4f}" in (tmp_path / "summary.md").read_text()
    with open(tmp_path / "metrics.csv") as handle:
        assert "autvc_best" in next(csv.reader(handle))


def test_rerun_with_other_settings_is_refused(tmp_path):
    settings = dict(output_dir=str(tmp_path), images=demo.sample_paths()[:1], method=["gradient"])
    with flagsaver.flagsaver(**settings):
        cli.main(["tf-smoothtaylor", "explain"])
    with flagsaver.flagsaver(**settings, seed=3):
        with pytest.raises(ValueError, match=r"same settings.*differ: .*seed \(0 → 3\).*--overwrite"):
            cli.main(["tf-smoothtaylor", "explain"])
    with flagsaver.flagsaver(**settings, seed=3, overwrite=True):
        cli.main(["tf-smoothtaylor", "explain"])
    assert json.loads((tmp_path / "run.json").read_text())["gradient.seed"] == 3
    assert len(list((tmp_path / "results").glob("*.json"))) == 1


def test_a_run_that_finished_no_image_can_be_rerun_with_new_settings(tmp_path):
    from tf_smoothtaylor.cli import runs as runs_module
    runs_module.OutputDir(str(tmp_path), {"seed": 0})                # then it failed
    out = runs_module.OutputDir(str(tmp_path), {"seed": 5})
    assert json.loads((tmp_path / "run.json").read_text()) == {"seed": 5}
    assert out.results_count() == 0


@pytest.mark.parametrize("args,message", [
    (["explain", "--output_dir", "{tmp}/o", "--method", "deconvnet"], "--method=deconvnet"),
    (["explain", "--output_dir", "{tmp}/o", "--num_roots=-3"], "--num_roots=-3"),
    (["explain", "--output_dir", "{tmp}/o", "--model", "mobilenet_v2", "--weights", "none",
      "--size", "32"], "missing input"),
    (["explain", "--output_dir", "{tmp}/o", "--images", "{tmp}/bad.png"], "could not be read"),
    (["explain", "--output_dir", "{tmp}/file/o"], "writable"),
    (["explain", "--output_dir", "{tmp}/o", "--images", "{tmp}/none*.png"], "no image matches"),
    (["explain", "--output_dir", "{tmp}/o", "--images", "{tmp}/bad.png", "{tmp}/a.png",
      "{tmp}/b.png"], "quote the pattern"),                   # an unquoted glob, expanded
    (["evaluate", "--output_dir", "{tmp}/o", "--images", "{tmp}/bad.png", "--metric",
      "relevance_mass"], "relevance_mass needs a ground-truth mask"),
    (["explain"], "--output_dir is required"),
    (["paint", "--output_dir", "{tmp}/o"], "one mode"),
])
def test_bad_flags_exit_with_one_clear_line(tmp_path, capsys, args, message):
    """In this process (the command's own parsing and error handling); one case also as
    a fresh process."""
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "file").write_text("a file, not a directory")
    args = [a.format(tmp=tmp_path) for a in args]
    if message == "--method=deconvnet":
        result = run_cli(*args)
        code, stderr = result.returncode, result.stderr
    else:
        with flagsaver.flagsaver(), pytest.raises(SystemExit) as exited:
            cli._main_with_errors(cli._parse_flags(["tf-smoothtaylor", *args]))
        code, stderr = exited.value.code, capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("tf-smoothtaylor: error:"), stderr
    assert message in lines[0] and "Traceback" not in stderr


def test_killed_evaluate_resumes_without_recomputing(tmp_path, capsys):
    args = ["evaluate", "--images_per_step", "1", "--num_roots", "48", "--limit", "6",
            "--method", "smooth_taylor", "--metric", "autvc", "--metric", "relevance_mass"]
    with flagsaver.flagsaver(output_dir=str(tmp_path / "whole"), images_per_step=1,
                             num_roots=48, limit=6, method=["smooth_taylor"],
                             metric=["autvc", "relevance_mass"]):
        cli.main(["tf-smoothtaylor", "evaluate"])          # the reference, in this process
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "tf_smoothtaylor", *args, "--output_dir",
                                str(interrupted)], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    results = interrupted / "results"
    deadline = time.time() + 240
    while time.time() < deadline and (not results.exists() or len(list(results.glob("*.json"))) < 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(results.glob("*.json"))
    assert 2 <= len(finished) < 6, "the run should be killed halfway"
    before = {p: p.read_bytes() for p in interrupted.rglob("*") if p.is_file()
              and any(p.name.startswith(f.stem) for f in finished)}
    capsys.readouterr()
    with flagsaver.flagsaver(output_dir=str(interrupted), images_per_step=1, num_roots=48,
                             limit=6, method=["smooth_taylor"],
                             metric=["autvc", "relevance_mass"]):
        cli.main(["tf-smoothtaylor", "evaluate"])        # the rerun, in this process
    assert f"{len(finished)} resumed" in capsys.readouterr().err
    for path, content in before.items():
        assert path.read_bytes() == content, f"{path} was rewritten"
    assert not list(interrupted.rglob(".tmp-*"))
    assert (interrupted / "summary.md").read_text() == (tmp_path / "whole" / "summary.md").read_text()
    assert (interrupted / "metrics.csv").read_text() == (tmp_path / "whole" / "metrics.csv").read_text()


def test_mirrored_strategy_gives_the_same_maps(tmp_path):
    images = demo.sample_paths()[:2]
    for strategy in ("default", "mirrored"):
        with flagsaver.flagsaver(output_dir=str(tmp_path / strategy), images=images,
                                 method=["smooth_taylor"], num_roots=6, strategy=strategy):
            cli.main(["tf-smoothtaylor", "explain"])
    for path in sorted((tmp_path / "default" / "maps").glob("*.npy")):
        np.testing.assert_allclose(np.load(path),
                                   np.load(tmp_path / "mirrored" / "maps" / path.name), atol=1e-5)


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


def test_flagfile(tmp_path):
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(f"--method=gradient\n--output_dir={tmp_path / 'out'}\n"
                        f"--images={demo.sample_paths()[0]}\n")
    with flagsaver.flagsaver():
        cli._main_with_errors(cli._parse_flags(["tf-smoothtaylor", "explain",
                                                f"--flagfile={flagfile}"]))
    with open(tmp_path / "out" / "index.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["gradient"]


def test_export_mode(tmp_path):
    target = tmp_path / "saved"
    with flagsaver.flagsaver(output_dir=str(target), method=["gradient"]):
        cli.main(["tf-smoothtaylor", "export"])
    signatures = tf.saved_model.load(str(target)).signatures
    assert {"serving_default", "explain_bytes", "explain_pixels"} <= set(signatures)
    image = open(demo.sample_paths()[0], "rb").read()
    out = signatures["serving_default"](image_bytes=tf.constant([image]))
    assert out["heatmap"].shape == (1, 64, 64)


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


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path):
    output = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "tf_smoothtaylor", "explain",
                                "--images_per_step", "1", "--num_roots", "400",
                                "--output_dir", str(output)], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               # As from a terminal: a suite started in the background
                               # (`&`) would pass SIGINT on as ignored.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and not list((output / "results").glob("*.json")):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "tf-smoothtaylor: interrupted; rerun the same command to resume")


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


@pytest.mark.parametrize("flag", ["--help", "--helpfull"])
def test_help_shows_modes_examples_names_and_the_project_flags_first(flag, capsys):
    """--helpfull in a fresh process (the console entry point); --help in this one."""
    if flag == "--helpfull":
        done = run_cli(flag, timeout=120)
        assert done.returncode == 0, done.stderr
        text = done.stdout
    else:
        with pytest.raises(SystemExit) as exited:
            cli._parse_flags(["tf-smoothtaylor", flag])
        assert exited.value.code == 0
        text = capsys.readouterr().out
    for expected in ("explain", "evaluate", "adapt", "export", "tf-smoothtaylor evaluate",
                     "smooth_taylor", "relevance_mass", "mobilenet_v2", "--num_roots"):
        assert expected in text
    assert "smooth_taylor: --num_roots" in text           # the flags each method reads
    ours = text.index("tf_smoothtaylor.cli.main:")
    assert ours < text.index("  --num_roots: R, the roots per image")
    if flag == "--helpfull":
        assert "absl.app:" in text and ours < text.index("absl.app:")


def test_model_and_input_errors_speak_in_flags(tmp_path):
    from tf_smoothtaylor.cli import commands, inputs
    corrupt = tmp_path / "broken.keras"
    corrupt.write_bytes(b"not a zip archive")
    cases = [
        (dict(model=str(tmp_path / "missing.keras")), "--model file not found"),
        (dict(model=str(corrupt)), "is not a Keras file"),
        (dict(model="mobilenet_v2", weights=str(tmp_path / "w.h5")),
         "--weights file not found"),
    ]
    for settings, message in cases:
        with flagsaver.flagsaver(**settings):
            with pytest.raises(ValueError, match=message):
                commands.load_spec(FLAGS)
    with pytest.raises(ValueError, match=r"is a directory; use '.*\*\.jpg' \(quoted\) or "
                                         r"--image_folder"):
        inputs.image_files([str(tmp_path)])


def test_long_steps_report_points_within_the_step_and_keep_the_maps(tmp_path):
    import io
    spec = demo.load()
    pixels = demo.samples()[0][:3]
    explainer = tst.SmoothTaylor(spec, num_roots=40, noise_scale=0.5, batch_size=8)

    def explain(x, t, k):
        return explainer(x, t, keys=k), {}

    explain.points_per_image, explain.batch_size = 40, 8          # groups of one image

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    out = runs.OutputDir(str(tmp_path), {"test": 1})
    records = runs.process(spec, [(pixels, np.zeros(3), ["a.png", "b.png", "c.png"])],
                           {"smooth_taylor": explain}, out,
                           progress=runs.Progress(3, stream=stream, interval=0.0))
    lines = [line for line in stream.getvalue().splitlines() if "points of this step" in line]
    assert [line.split()[1] for line in lines] == ["40/120", "80/120", "120/120"]
    inputs = spec.preprocess(pixels)
    keys = [runs.id_key(record["id"]) for record in records]
    whole = explainer(inputs, [r["target"] for r in records], keys=keys).numpy()
    for i, record in enumerate(records):
        saved = np.load(tmp_path / record["methods"]["smooth_taylor"]["files"]["npy"])
        np.testing.assert_allclose(saved, whole[i], atol=1e-5)


def test_two_spellings_of_the_same_files_are_the_same_run(tmp_path, monkeypatch):
    source = demo.sample_paths()[0]
    monkeypatch.chdir(os.path.dirname(source))
    relative = os.path.join(".", os.path.basename(source))
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=[source], method=["gradient"]):
        cli.main(["tf-smoothtaylor", "explain"])
    with flagsaver.flagsaver(output_dir=str(tmp_path), images=[relative], method=["gradient"]):
        cli.main(["tf-smoothtaylor", "explain"])                  # resumes, no refusal
    assert len(list((tmp_path / "results").glob("*.json"))) == 1


def test_explain_then_evaluate_into_one_directory_is_one_run(tmp_path, capsys):
    """evaluate after explain scores the saved maps (no map is recomputed) and ends
    with the tables of a direct evaluate; other metric settings are another run."""
    common = dict(images=demo.sample_paths()[:2], method=["smooth_taylor"], num_roots=4,
                  num_copies=4)
    with flagsaver.flagsaver(output_dir=str(tmp_path / "direct"), **common):
        cli.main(["tf-smoothtaylor", "evaluate"])
    both = tmp_path / "both"
    with flagsaver.flagsaver(output_dir=str(both), **common):
        cli.main(["tf-smoothtaylor", "explain"])
    maps = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (both / "maps").glob("*.npy")}
    with flagsaver.flagsaver(output_dir=str(both), **common):
        cli.main(["tf-smoothtaylor", "evaluate"])
    assert "0 computed, 2 scored from saved maps, 0 resumed" in capsys.readouterr().err
    for path, (content, mtime) in maps.items():
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime
    assert (both / "summary.md").read_text() == (tmp_path / "direct" / "summary.md").read_text()
    assert json.loads((both / "run.json").read_text())["metrics"] == [
        "aupc", "autvc", "relevance_mass"]
    with flagsaver.flagsaver(output_dir=str(both), **common):       # explain again: nothing
        cli.main(["tf-smoothtaylor", "explain"])                    # lost, nothing redone
    assert (both / "summary.md").read_text() == (tmp_path / "direct" / "summary.md").read_text()
    with flagsaver.flagsaver(output_dir=str(both), **dict(common, num_copies=5)):
        with pytest.raises(ValueError, match="metric_options"):
            cli.main(["tf-smoothtaylor", "evaluate"])


def test_a_multi_input_model_file_is_refused_with_the_way_out(tmp_path):
    import keras
    image, meta = keras.Input((8, 8, 3), name="image"), keras.Input((2,), name="meta")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    path = str(tmp_path / "two_inputs.keras")
    keras.Model([image, meta], keras.layers.Dense(3)(joined)).save(path)
    with flagsaver.flagsaver(output_dir=str(tmp_path / "out"), model=path):
        with pytest.raises(ValueError, match=r"2 inputs \['image', 'meta'\].*select_input"):
            cli.main(["tf-smoothtaylor", "explain"])


def test_auto_draws_reach_the_tables_and_convergence_png(tmp_path, capsys):
    out = tmp_path / "auto"
    with flagsaver.flagsaver(output_dir=str(out), limit=3, images_per_step=3,
                             method=["smooth_taylor"], num_roots="auto", target_error=0.9,
                             max_points=96, metric=["autvc"], convergence=True):
        cli.main(["tf-smoothtaylor", "evaluate"])
    printed = capsys.readouterr().out
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:                 # each image stopped at the target, or at the cap
        assert row["num_points"].isdigit() and int(row["num_points"]) % 32 == 0
        assert float(row["relative_error"]) <= 0.9 or row["num_points"] == "96"
    assert any(row["num_points"] != "96" for row in rows)
    record = json.loads((out / "results" / f"{rows[0]['id']}.json").read_text())
    assert record["methods"]["smooth_taylor"]["num_points"] == int(rows[0]["num_points"])
    assert "| smooth_taylor |" in (out / "summary.md").read_text().split("precision")[1]
    picture = tf.io.decode_png(tf.io.read_file(str(out / "convergence.png"))).numpy()
    assert picture.shape[0] > 200 and picture.shape[1] > 600 and str(out) in printed
    assert (picture != 255).any(axis=-1).mean() > 0.02              # lines were drawn


@pytest.mark.parametrize("argv, message", [
    (["--num_roots=lots"], "integer >= 1 or 'auto'"),
    (["--num_roots=10", "--target_error=0.1"], "apply only with"),
    (["--num_samples=auto", "--target_error=0"], "must be > 0"),
])
def test_auto_flags_are_checked_when_parsed(argv, message):
    with flagsaver.flagsaver(), pytest.raises(flags.Error, match=message):
        FLAGS(["tf-smoothtaylor", *argv])


def test_every_method_runs_from_the_command_line_and_is_scored(tmp_path):
    references = [demo.sample_paths()[i] for i in (3, 4)]
    methods = ["grad_cam", "occlusion", "rise", "expected_gradients", "blur_ig", "lrp"]
    with flagsaver.flagsaver(output_dir=str(tmp_path / "all"), limit=2, images_per_step=2,
                             method=methods, references=references, num_masks=64, steps=8,
                             num_samples=8, occlusion_window=16, metric=["autvc"],
                             lrp_composite="deep_taylor"):
        cli.main(["tf-smoothtaylor", "evaluate"])
    settings = json.loads((tmp_path / "all" / "run.json").read_text())
    assert "deep_taylor" in json.dumps(settings)
    with open(tmp_path / "all" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({row["method"] for row in rows}) == sorted(methods)
    assert all(np.isfinite(float(row["autvc"])) for row in rows)
    with flagsaver.flagsaver(output_dir=str(tmp_path / "none"), method=["expected_gradients"]):
        with pytest.raises(ValueError, match="--references"):
            cli.main(["tf-smoothtaylor", "explain"])


def _copy_samples(folder, names):
    folder.mkdir(exist_ok=True)
    for name, source in zip(names, demo.sample_paths()):
        (folder / name).write_bytes(open(source, "rb").read())


def test_a_run_continues_only_inputs_that_grow_at_the_end(tmp_path, capsys):
    """run.json keeps the files a pattern matched. A file added that sorts last (or a
    raised --limit) continues the run; one that sorts first would renumber the others
    (7 images counted for 4): that is refused in one line, --overwrite starts over."""
    folder, output = tmp_path / "images", tmp_path / "out"
    _copy_samples(folder, ["b.png", "c.png", "d.png"])
    settings = dict(output_dir=str(output), images=[str(folder / "*.png")], method=["gradient"])
    with flagsaver.flagsaver(**settings):
        cli.main(["tf-smoothtaylor", "explain"])
    recorded = json.loads((output / "run.json").read_text())["inputs"]
    assert recorded == [os.path.realpath(folder / n) for n in ("b.png", "c.png", "d.png")]
    _copy_samples(folder, ["a.png"])
    with flagsaver.flagsaver(**settings):
        with pytest.raises(ValueError, match=r"^the inputs of the run in .* changed since it "
                                             r"started \(1 added, e\.g\. a\.png; finished "
                                             r"images there: 3\).*--overwrite"):
            cli.main(["tf-smoothtaylor", "explain"])
    (folder / "a.png").unlink()
    _copy_samples(folder, ["e.png"])
    capsys.readouterr()
    with flagsaver.flagsaver(**settings):
        cli.main(["tf-smoothtaylor", "explain"])
    assert "1 computed, 3 resumed" in capsys.readouterr().err
    results = sorted(p.name for p in (output / "results").glob("*.json"))
    assert results == ["00000_b.json", "00001_c.json", "00002_d.json", "00003_e.json"]
    with flagsaver.flagsaver(output_dir=str(tmp_path / "demo"), limit=2, method=["gradient"]):
        cli.main(["tf-smoothtaylor", "explain"])
    with flagsaver.flagsaver(output_dir=str(tmp_path / "demo"), limit=3, method=["gradient"]):
        cli.main(["tf-smoothtaylor", "explain"])               # --limit raised: continues
    assert "1 computed, 2 resumed" in capsys.readouterr().err
    assert len(list((tmp_path / "demo" / "results").glob("*.json"))) == 3


def test_ids_sort_in_input_order_at_any_count():
    from tf_smoothtaylor.cli import runs
    indices = [0, 7, 99_999, 100_000, 100_001, 999_999, 1_000_000, 12_345_678]
    ids = [runs.image_id(i, "x.png") for i in indices]
    assert sorted(ids) == ids
    assert ids[:4] == ["00000_x", "00007_x", "99999_x", "f100000_x"]


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


def test_every_method_takes_its_python_defaults_from_the_command_line():
    """Flags are made from the methods' declarations and default to "not given": the
    explainer the command line builds with no method flag has the settings of the
    class built with no arguments."""
    from tf_smoothtaylor.cli import commands
    from tf_smoothtaylor.cli.config import RunConfig
    from tf_smoothtaylor.methods import BY_NAME
    spec = demo.load()
    config = RunConfig(output_dir="unused").replace(references=(demo.sample_paths()[0],))
    for name, cls in BY_NAME.items():
        built = cls(spec, **commands.method_options(config, name, spec))
        plain = cls(spec, **({"references": built.references} if name == "expected_gradients"
                             else {}))
        mine, theirs = built.settings(), plain.settings()
        if name == "expected_gradients":
            mine.pop("references"), theirs.pop("references")
        assert mine == theirs, name
    # Shared flags are shared only where both declarations say so; --help lists them.
    assert set(cli.METHOD_FLAGS["steps"].readers[i][0] for i in range(2)) == {
        "integrated_gradients", "blur_ig"}
    assert "shap_noise_scale" in cli.METHOD_FLAGS and "occlusion_baseline" in cli.METHOD_FLAGS


def test_the_readme_settings_table_is_the_methods_declarations():
    from tf_smoothtaylor.methods import BY_NAME, options
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert options.settings_table(BY_NAME) in readme


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


def test_grid_images_and_figure_format_flags(tmp_path, capsys):
    """--grid_images picks how many images the grid shows (and the output says so);
    --figure_format svg writes an SVG that parses."""
    import xml.etree.ElementTree as ElementTree
    with flagsaver.flagsaver(output_dir=str(tmp_path), method=["gradient"], limit=3,
                             grid_images=2, figure_format="svg"):
        cli.main(["tf-smoothtaylor", "explain"])
    assert "2 of 3 images; --grid_images to change" in capsys.readouterr().out
    root = ElementTree.parse(tmp_path / "grid.svg").getroot()
    assert root.tag.endswith("svg") and not (tmp_path / "grid.png").exists()


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


def test_a_damaged_record_or_a_missing_map_is_named_and_explained_again(tmp_path):
    """A truncated results/<id>.json and a map file its record lists but that is gone:
    the rerun warns naming each file, explains those two images again, and ends with
    every file byte-identical to the first run's (three records, none twice)."""
    settings = dict(output_dir=str(tmp_path), images=demo.sample_paths()[:3],
                    method=["gradient"])
    with flagsaver.flagsaver(**settings):
        cli.main(["tf-smoothtaylor", "explain"])
    first = {path.relative_to(tmp_path): path.read_bytes()
             for path in tmp_path.rglob("*") if path.is_file()}
    damaged, emptied = sorted((tmp_path / "results").glob("*.json"))[:2]
    damaged.write_text(damaged.read_text()[:7])
    gone = tmp_path / json.loads(emptied.read_text())["methods"]["gradient"]["files"]["npy"]
    gone.unlink()
    with flagsaver.flagsaver(**settings):
        with pytest.warns(UserWarning) as caught:
            cli.main(["tf-smoothtaylor", "explain"])
    messages = [str(w.message) for w in caught]
    assert any(str(damaged) in m and "is damaged" in m and "explained again" in m
               for m in messages), messages
    assert any(str(gone) in m and "is missing" in m and "explained again" in m
               for m in messages), messages
    again = {path.relative_to(tmp_path): path.read_bytes()
             for path in tmp_path.rglob("*") if path.is_file()}
    assert again == first


def test_a_second_run_into_a_directory_in_use_is_refused_while_the_first_writes(tmp_path):
    """Two processes, one run directory: while the first holds it (a process that
    opened the run, as a run's start does, and is writing a temporary file), a real
    second run is refused in one line naming the first, and the first's temporary file
    is untouched (the second used to delete it); once the first ends, the lock is gone
    and the next run starts; a holder killed with SIGKILL does not stop a run."""
    output, go = tmp_path / "out", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, sys, time
        from tf_smoothtaylor.data.rundir import OutputDir
        out = OutputDir({str(output)!r}, {{"held": True}})
        open(os.path.join({str(output)!r}, "maps", ".tmp-writing"), "w").close()
        print("holding", flush=True)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
        assert os.path.exists(os.path.join({str(output)!r}, "maps", ".tmp-writing"))
    """)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        second = run_cli("explain", "--method", "gradient", "--output_dir", str(output))
        assert second.returncode == 2, second.stderr
        assert f"in use by another run (process {holder.pid}" in second.stderr
        assert (output / "maps" / ".tmp-writing").exists()
    finally:
        go.touch()
        _, stderr = holder.communicate(timeout=60)
    assert holder.returncode == 0, stderr
    assert not (output / ".run.holder").exists()
    # A holder killed with SIGKILL: the operating system ends its lock with it.
    killed = tmp_path / "killed"
    victim = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from tf_smoothtaylor.data.rundir import OutputDir
        out = OutputDir({str(killed)!r}, {{"held": True}})
        print("holding", flush=True)
        time.sleep(600)
    """)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert victim.stdout.readline().strip() == "holding"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    for directory in (output, killed):
        with flagsaver.flagsaver(output_dir=str(directory), images=demo.sample_paths()[:2],
                                 method=["gradient"], overwrite=True):
            cli.main(["tf-smoothtaylor", "explain"])
        assert len(list((directory / "results").glob("*.json"))) == 2
        assert not (directory / ".run.holder").exists()
        assert not list(directory.rglob(".tmp-*"))
