"""The tf-smoothtaylor command's run directories: ids, resuming after a kill or Ctrl-C,
settings and inputs that change, damaged records, one run at a time."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from absl.testing import flagsaver

import tf_smoothtaylor as tst
from tf_smoothtaylor import demo
from tf_smoothtaylor.cli import main as cli
from tf_smoothtaylor.cli import runs

from cli_support import ENV, parsed_flags, run_cli  # noqa: F401


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
