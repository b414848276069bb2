"""The tf-smoothtaylor command's flags: one-line errors, help, flag files, the methods'
flags and their Python defaults."""

import csv
import os

import pytest
from absl import flags
from absl.testing import flagsaver

from tf_smoothtaylor import demo
from tf_smoothtaylor.cli import main as cli

from cli_support import FLAGS, ROOT, parsed_flags, run_cli  # noqa: F401


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


@pytest.mark.parametrize("argv, message", [
    (["--num_roots=lots"], "integer >= 1 or 'auto'"),
    (["--num_roots=10", "--target_error=0.1"], "apply only with"),
    (["--num_samples=auto", "--target_error=0"], "must be > 0"),
])
def test_auto_flags_are_checked_when_parsed(argv, message):
    with flagsaver.flagsaver(), pytest.raises(flags.Error, match=message):
        FLAGS(["tf-smoothtaylor", *argv])


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
