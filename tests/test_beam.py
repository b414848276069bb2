"""The command line on Apache Beam: same files and numbers as an in-process run,
resumable after a kill, unreadable images reported, bad options refused."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

pytest.importorskip("apache_beam", reason="the [beam] extra (apache-beam) is not installed")

from tf_smoothtaylor import beam, demo  # noqa: E402
from tf_smoothtaylor.cli import main as cli  # noqa: E402
from tf_smoothtaylor.cli import runners, runs  # noqa: E402
from tf_smoothtaylor.cli.config import RunConfig  # noqa: E402

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
SETTINGS = ["--num_roots", "32", "--images_per_step", "1", "--limit", "6",
            "--method", "smooth_taylor", "--metric", "autvc", "--metric", "relevance_mass"]


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    yield


def _rows(path):
    with open(path) as handle:
        return {(row["id"], row["method"]): row for row in csv.DictReader(handle)}


def _assert_same_run(beam_dir, reference):
    maps = sorted(p.name for p in (reference / "maps").glob("*.npy"))
    assert maps and maps == sorted(p.name for p in (beam_dir / "maps").glob("*.npy"))
    for name in maps:
        np.testing.assert_allclose(np.load(beam_dir / "maps" / name),
                                   np.load(reference / "maps" / name), rtol=1e-6, atol=1e-7)
    ours, theirs = _rows(beam_dir / "metrics.csv"), _rows(reference / "metrics.csv")
    assert ours.keys() == theirs.keys()
    for key, row in theirs.items():
        for column in ("autvc", "relevance_mass", "relative_error"):
            np.testing.assert_allclose(float(ours[key][column]), float(row[column]), rtol=1e-5)
    assert (beam_dir / "summary.md").read_text() == (reference / "summary.md").read_text()


def test_beam_run_with_two_workers_equals_the_in_process_run_and_resumes_after_a_kill(
        tmp_path, capfd):
    reference = tmp_path / "in_process"
    with flagsaver.flagsaver(output_dir=str(reference), num_roots=32, images_per_step=1,
                             limit=6, method=["smooth_taylor"],
                             metric=["autvc", "relevance_mass"]):
        cli.main(["tf-smoothtaylor", "evaluate"])
    output = tmp_path / "beam"
    command = [sys.executable, "-m", "tf_smoothtaylor", "evaluate", *SETTINGS,
               "--output_dir", str(output), "--runner=DirectRunner"]
    # Killed (in-memory runner, one process) once a few images are finished ...
    process = subprocess.Popen(command + ["--direct_running_mode=in_memory"], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    results, deadline = output / "results", time.time() + 240
    while time.time() < deadline and len(list(results.glob("[!.]*.json"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(results.glob("[!.]*.json"))
    total = 6
    assert 2 <= len(finished) < total, "the run should be killed halfway"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in output.rglob("*")
              if p.is_file() and any(p.name.startswith(f.stem) for f in finished)}
    # ... then rerun on two worker processes: the finished images are neither lost nor
    # recomputed.
    capfd.readouterr()
    with flagsaver.flagsaver(output_dir=str(output), num_roots=32, images_per_step=1, limit=6,
                             method=["smooth_taylor"], metric=["autvc", "relevance_mass"],
                             runner="DirectRunner"):        # driver here, workers apart
        cli.main(["tf-smoothtaylor", "evaluate", "--direct_num_workers=2",
                  "--direct_running_mode=multi_processing"])
    printed = capfd.readouterr()
    assert f"{total - len(finished)} computed, {len(finished)} resumed" in printed.out
    # Beam's and TensorFlow's start-up and INFO lines (the driver's and the worker
    # processes') stay off the terminal.
    assert not [line for line in printed.err.splitlines() if line.strip()], printed.err
    for path, (content, mtime) in before.items():
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime, path
    assert not list(output.rglob(".tmp-*"))
    _assert_same_run(output, reference)
    # The Python API with the same keys gives the same maps.
    import tf_smoothtaylor as tst
    spec = demo.load()
    row = _rows(output / "index.csv")[("00000_sample_00_triangle", "smooth_taylor")]
    pixels = demo.samples()[0][:1]
    explainer = tst.SmoothTaylor(spec, num_roots=32, noise_scale=0.5, batch_size=64)
    api = explainer(spec.preprocess(pixels), int(row["target"]), keys=[runs.id_key(row["id"])])
    np.testing.assert_allclose(np.load(output / row["npy"]), api[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("runner", [None, "DirectRunner"])
def test_unreadable_images_are_reported_and_the_others_finish(tmp_path, capsys, runner):
    """In this process as on Beam: the run finishes the readable images, lists every
    unreadable one in summary.md with its reason and in one line on stderr, and ends
    normally; the readable images keep the ids their positions give them."""
    folder = tmp_path / "images"
    folder.mkdir()
    for path in demo.sample_paths()[:2]:
        (folder / os.path.basename(path)).write_bytes(open(path, "rb").read())
    (folder / "sample_01b_broken.png").write_bytes(b"not an image")
    (folder / "sample_01c_broken.png").write_bytes(b"nor this")
    output = tmp_path / "out"
    with flagsaver.flagsaver(output_dir=str(output), images=[str(folder / "*.png")],
                             method=["gradient"], runner=runner):
        cli.main(["tf-smoothtaylor", "evaluate"])
    results = sorted(p.name for p in (output / "results").glob("*.json"))
    assert results == ["00000_sample_00_triangle.json", "00001_sample_01_circle.json"]
    summary = (output / "summary.md").read_text()
    assert "00002_sample_01b_broken" in summary and "00003_sample_01c_broken" in summary
    assert "Unknown image file format" in summary and "{{" not in summary
    lines = [line for line in capsys.readouterr().err.splitlines()
             if "could not be read" in line]
    assert len(lines) == 1 and "2 of 4 images could not be read" in lines[0]


@pytest.mark.parametrize("args, message", [
    (["--runner=NoSuchRunner"], "--runner NoSuchRunner: Unexpected pipeline runner"),
    (["--runner=DirectRunner", "--num_rootz=3"], "unknown option.*--num_rootz"),
    (["--runner=DaskRunner", "--dask_client_addres=tcp://x:1"],
     "unknown option.*--dask_client_addres$"),
    (["--num_rootz=3"], "accepted only with --runner"),
    (["--runner=DirectRunner", "--output_dir=/proc/none"], "writable `output_dir`"),
])
def test_bad_runner_options_end_in_one_line(args, message, capsys):
    argv = ["tf-smoothtaylor", "evaluate", "--output_dir=unused", *args]
    with flagsaver.flagsaver(), pytest.raises(SystemExit) as exited:
        cli._main_with_errors(cli._parse_flags(argv))         # the command, in this process
    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("tf-smoothtaylor: error:") and __import__("re").search(message, last)
    assert "Traceback" not in stderr


def test_run_config_is_built_once_from_the_flags_and_pickles():
    import pickle
    with flagsaver.flagsaver(output_dir="out", method=["gradient", "smoothgrad"],
                             images=["a.png"], num_samples=7):
        config = RunConfig.from_flags(FLAGS, beam_args=["--direct_num_workers=2"],
                                      method_flags=tuple(cli.METHOD_FLAGS))
    assert config.method == ("gradient", "smoothgrad") and config.images == ("a.png",)
    assert config.num_samples == 7 and config.num_roots is None     # not given: the default
    assert config.given == {"num_samples": 7}
    assert pickle.loads(pickle.dumps(config)) == config
    assert runners.pipeline_options(config.replace(runner="DirectRunner")).get_all_options()[
        "direct_num_workers"] == 2


def test_imagenet_validation_entries_match_the_in_process_order(tmp_path):
    from conftest import write_imagenet_val_tar
    from tf_smoothtaylor import data
    manual = tmp_path / "manual"
    write_imagenet_val_tar(str(manual), [3, 1, 2, 5])
    config = RunConfig(output_dir=str(tmp_path / "out"), manual_dir=str(manual),
                       data_dir=str(tmp_path / "tfds"), limit=3, model="mobilenet_v2")
    entries = beam.list_entries(config)
    expected = [name.decode() for _, _, names in data.imagenet_validation(
        str(manual), data_dir=str(tmp_path / "tfds"), limit=3, size=16, resize=16)
        for name in names.numpy()]
    assert [entry.source for entry in entries] == expected == [
        f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3)]
    assert [entry.id for entry in entries] == [runs.image_id(i, name)
                                               for i, name in enumerate(expected)]
    reader = beam.ReadImages(config, 16, 16)
    reader.setup()
    (kind, images), = reader.process(entries)          # one step of three images
    assert kind == beam.IMAGE
    read = sorted(images, key=lambda item: item[0])     # split order: any
    assert [item[0] for item in read] == [entry.id for entry in entries]
    batch = next(iter(data.imagenet_validation(str(manual), data_dir=str(tmp_path / "tfds"),
                                               limit=3, size=16, resize=16)))
    np.testing.assert_array_equal(np.stack([item[3] for item in read]), batch[0].numpy())


def test_image_folder_entries_match_the_in_process_order(tmp_path):
    from tf_smoothtaylor import data
    for label in ("b_cats", "a_dogs"):
        folder = tmp_path / "root" / "val" / label
        folder.mkdir(parents=True)
        for path in demo.sample_paths()[:3]:
            (folder / os.path.basename(path)).write_bytes(open(path, "rb").read())
    root = str(tmp_path / "root")
    entries = beam.list_entries(RunConfig(output_dir="unused", image_folder=root))
    batches = data.image_folder(root, size=16, resize=None, batch_size=4)
    names = [n.decode() for _, _, ns in batches for n in ns.numpy()]
    labels = [int(v) for _, ls, _ in batches for v in ls.numpy()]
    assert [e.source for e in entries] == names and [e.label for e in entries] == labels
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]


def test_adapt_runs_on_beam_like_in_process(tmp_path):
    common = dict(images=demo.sample_paths()[:1], num_roots=4, max_iterations=1,
                  num_copies=4, window=8, num_regions=4)
    for name, runner in (("in_process", None), ("beam", "DirectRunner")):
        with flagsaver.flagsaver(output_dir=str(tmp_path / name), runner=runner, **common):
            cli.main(["tf-smoothtaylor", "adapt"])
    ours, theirs = _rows(tmp_path / "beam" / "metrics.csv"), _rows(
        tmp_path / "in_process" / "metrics.csv")
    assert ours.keys() == theirs.keys() and len(ours) == 1
    for key, row in theirs.items():
        for column in ("noise_scale", "aupc", "aupc_best"):
            np.testing.assert_allclose(float(ours[key][column]), float(row[column]), rtol=1e-5)


def test_beam_evaluate_scores_the_maps_of_an_earlier_explain(tmp_path):
    common = dict(images=demo.sample_paths()[:2], method=["gradient"], num_copies=4)
    with flagsaver.flagsaver(output_dir=str(tmp_path / "direct"), **common):
        cli.main(["tf-smoothtaylor", "evaluate"])
    with flagsaver.flagsaver(output_dir=str(tmp_path / "both"), **common):
        cli.main(["tf-smoothtaylor", "explain"])
    maps = {p: p.stat().st_mtime_ns for p in (tmp_path / "both" / "maps").glob("*.npy")}
    with flagsaver.flagsaver(output_dir=str(tmp_path / "both"), runner="DirectRunner",
                             **common):
        cli.main(["tf-smoothtaylor", "evaluate"])
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in maps.items())
    assert ((tmp_path / "both" / "summary.md").read_text()
            == (tmp_path / "direct" / "summary.md").read_text())


def test_a_transient_failure_is_retried_not_recorded_as_the_images(tmp_path, monkeypatch,
                                                                    capsys):
    """A failure that is not the image's fault (here an injected storage error, once)
    is not listed as a failed image: it fails the step, and the rerun (or the
    runner's retry) completes every image."""
    from tf_smoothtaylor.cli import runs as runs_module
    marker, original = tmp_path / "failed-once", runs_module.process_batch

    def flaky(*args, **kwargs):
        if not marker.exists():
            marker.write_text("")
            raise OSError("storage unavailable (injected, once)")
        return original(*args, **kwargs)

    monkeypatch.setattr(runs_module, "process_batch", flaky)
    output = tmp_path / "out"
    attempts = 0
    with flagsaver.flagsaver(output_dir=str(output), method=["gradient"], limit=3,
                             images_per_step=1, runner="DirectRunner"):
        for _ in range(2):
            attempts += 1
            try:
                cli.main(["tf-smoothtaylor", "explain"])
                break
            except Exception as error:  # noqa: BLE001 — the runner's own wrapping
                assert "injected" in str(error)
    assert marker.exists() and attempts == 2
    assert len(list((output / "results").glob("*.json"))) == 3
    assert "could not be read" not in capsys.readouterr().err
    assert "storage unavailable" not in "".join(p.read_text() for p in output.rglob("*.md"))


def test_an_output_dir_whose_rename_copies_and_never_overwrites(tmp_path, monkeypatch):
    """On a store whose rename is a copy and a delete that refuses an existing target
    (HDFS; GCS and S3 copy too), a run and a second run that rewrites every record
    (evaluate over explain) end with the same files as on a local disk, no
    temporary left; on an object store each write is one upload, no rename."""
    import copy_rename_fs as fs
    local, reference = tmp_path / "out", tmp_path / "reference"
    for mode in ("explain", "evaluate"):
        for output_dir, runner in ((fs.PREFIX + str(local), "DirectRunner"),
                                   (str(reference), None)):      # the reference: in process
            with flagsaver.flagsaver(output_dir=output_dir, method=["gradient"], limit=2,
                                     runner=runner):
                cli.main(["tf-smoothtaylor", mode])
    assert fs.OPERATIONS["refused"] >= 3        # run.json and the two scored records
    assert not list(local.rglob(".tmp-*"))
    for name in ("index.csv", "metrics.csv", "summary.md"):
        assert (local / name).read_text() == (reference / name).read_text()
    from tf_smoothtaylor.cli import beam_files
    monkeypatch.setattr(beam_files, "OBJECT_STORES", ("copyrename",))
    before = fs.OPERATIONS.copy()
    for data in (b"first", b"second"):
        beam.BeamFiles.write(fs.PREFIX + str(local / "object.bin"), data)
    assert fs.OPERATIONS - before == {"create": 2}
    assert (local / "object.bin").read_bytes() == b"second"


@pytest.mark.parametrize("runner, arguments, option, value", [
    ("DaskRunner", ["--dask_client_address=tcp://10.0.0.1:8786"], "address",
     "tcp://10.0.0.1:8786"),
    ("daskrunner", ["--dask_npartitions=4"], "npartitions", 4),
    ("FlinkRunner", ["--flink_master=host:8081", "--environment_type=LOOPBACK"],
     "flink_master", "host:8081"),
    ("SparkRunner", ["--spark_master_url=spark://host:7077"], "spark_master_url",
     "spark://host:7077"),
    ("PortableRunner", ["--job_endpoint=localhost:8099"], "job_endpoint", "localhost:8099"),
    ("PrismRunner", [], "runner", None),
])
def test_every_runner_takes_its_own_options_by_beams_names(runner, arguments, option, value):
    """Beam's runner names (any case) with each runner's own options, which Beam parses
    (the Dask runner's are registered by importing it); a Dask run gets one step per
    task unless partitions are given."""
    config = RunConfig(output_dir="unused", runner=runner, beam_args=tuple(arguments))
    options = runners.pipeline_options(config).get_all_options()
    if value is not None:
        assert options[option] == value
    if runner.lower() == "daskrunner":
        assert options["partition_size"] == (None if "npartitions" in arguments[0] else 1)


def test_a_runner_whose_packages_are_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam.runners.dask.dask_runner", None)
    with pytest.raises(ValueError, match=r"--runner DaskRunner needs .*tf-smoothtaylor\[dask\]"):
        runners.pipeline_options(RunConfig(output_dir="unused", runner="DaskRunner"))
    import importlib.util
    if importlib.util.find_spec("google.auth") is None:
        with pytest.raises(ValueError, match=r"tf-smoothtaylor\[dataflow\]"):
            runners.runner_path("DataflowRunner")


def test_local_paths_become_absolute_for_workers_and_urls_stay(tmp_path, monkeypatch):
    """What the driver hands to Beam's workers: local paths absolute (the workers may
    run in other folders), object-store URLs, registry names and 'imagenet' as given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.keras").write_text("a model file")
    config = RunConfig(output_dir="out", images=("imgs/*.png", "gs://bucket/*.jpg"),
                       model="model.keras", weights="imagenet",
                       custom_objects=("layers.py", "my_package.layers")).replace(
                           references=("refs/a.png", "s3://bucket/b.png"))
    moved = config.with_absolute_paths(["references"])
    assert moved.output_dir == str(tmp_path / "out")
    assert moved.images == (str(tmp_path / "imgs" / "*.png"), "gs://bucket/*.jpg")
    assert moved.model == str(tmp_path / "model.keras") and moved.weights == "imagenet"
    assert moved.custom_objects == (str(tmp_path / "layers.py"), "my_package.layers")
    assert moved.references == (str(tmp_path / "refs" / "a.png"), "s3://bucket/b.png")
    named = RunConfig(output_dir="gs://bucket/out", model="mobilenet_v2").with_absolute_paths()
    assert (named.output_dir, named.model, named.image_folder) == (
        "gs://bucket/out", "mobilenet_v2", None)


def test_array_inputs_run_on_beam_like_in_process(tmp_path):
    """Texts (token ids through a vocabulary, explained at the embeddings) and CSV rows
    on the DirectRunner: the same maps, records and summary as in this process."""
    import keras
    from tf_smoothtaylor.demo import tasks
    tasks.load("text").save(tmp_path / "text.keras")
    (tmp_path / "vocab.txt").write_text("\n".join(tasks.VOCABULARY) + "\n")
    (tmp_path / "reviews.txt").write_text("the movie was great\nawful plot and bad cast\n"
                                          "a fine film\n")
    weights = np.random.default_rng(2).normal(size=(4, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, use_bias=False)])
    model.layers[0].set_weights([weights])
    model.save(tmp_path / "tabular.keras")
    (tmp_path / "rows.csv").write_text("a,b,c,d,label\n1,2,3,4,0\n-1,0.5,2,0,1\n3,1,-2,1,1\n")
    runs_ = (dict(model=str(tmp_path / "text.keras"), inputs=[str(tmp_path / "reviews.txt")],
                  vocabulary=str(tmp_path / "vocab.txt"), layer="embedding"),
             dict(model=str(tmp_path / "tabular.keras"), inputs=[str(tmp_path / "rows.csv")]))
    for number, common in enumerate(runs_):
        for name, runner in (("in_process", None), ("beam", "DirectRunner")):
            with flagsaver.flagsaver(output_dir=str(tmp_path / f"{name}{number}"),
                                     runner=runner, method=["integrated_gradients"],
                                     **common):
                cli.main(["tf-smoothtaylor", "evaluate"])
        beam_dir, reference = tmp_path / f"beam{number}", tmp_path / f"in_process{number}"
        maps = sorted(p.name for p in (reference / "maps").glob("*.npy"))
        assert len(maps) == 6 and maps == sorted(p.name for p in (beam_dir / "maps").glob("*"))
        for name in maps:
            np.testing.assert_allclose(np.load(beam_dir / "maps" / name),
                                       np.load(reference / "maps" / name), rtol=1e-6,
                                       atol=1e-7)
        assert (beam_dir / "summary.md").read_text() == (reference / "summary.md").read_text()
