"""tf-smoothtaylor: explain, evaluate and adapt from the command line.

Usage:
  tf-smoothtaylor MODE [--flags]

Modes:
  explain    heatmaps (PNG overlay and raw), attributions (.npy) and an index
  evaluate   explain, then score every map (AUPC, AUTVC, ...) and summarise
  adapt      SmoothTaylor with σ chosen per image by adaptive noising
  export     a SavedModel for TF Serving (first --method) into --output_dir

Examples:
  tf-smoothtaylor evaluate --output_dir demo_out                   # bundled demo, offline
  tf-smoothtaylor explain --model densenet121 --images 'photos/*.jpg' --output_dir out
  tf-smoothtaylor evaluate --model resnet152 --manual_dir ~/imagenet --limit 1000 \\
      --method smooth_taylor --method integrated_gradients --output_dir paper
  tf-smoothtaylor evaluate --output_dir demo_beam --runner=DirectRunner \\
      --direct_num_workers=2 --direct_running_mode=multi_processing   # Apache Beam

Runs resume: rerunning the same command skips finished images. Bad flags or
inputs end with one line on stderr and exit code 2; images that cannot be read
are listed in summary.md (exit code 2 only when none could be read).
TensorFlow's and Beam's own log lines stay off the terminal unless --verbosity
is given (e.g. --verbosity=0 for INFO).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import logging  # noqa: E402

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from tf_smoothtaylor.cli import quiet as _quiet  # noqa: E402

# The method flags are made from the methods' own declarations (methods.options), so
# the methods are imported here, with TensorFlow's start-up lines kept off stderr.
_quiet.import_tensorflow()
from tf_smoothtaylor.cli.config import RunConfig  # noqa: E402
from tf_smoothtaylor.methods import BY_NAME  # noqa: E402
from tf_smoothtaylor.methods import registry as methods_registry  # noqa: E402
from tf_smoothtaylor.methods import options as method_options  # noqa: E402
from tf_smoothtaylor.metrics import registry as metrics_registry  # noqa: E402

MODES = ("explain", "evaluate", "adapt", "export")
METHODS = tuple(BY_NAME)
METRICS = metrics_registry.names()
METHOD_FLAGS = method_options.flag_table(BY_NAME)

FLAGS = flags.FLAGS


def _define_run_flags() -> None:
    """The run's flags, made from ``RunConfig``'s fields (each declares its default,
    help, parser and bound once, with ``config.setting``)."""
    for field in dataclasses.fields(RunConfig):
        meta = field.metadata
        if "kind" not in meta:
            continue
        default = None if field.default is dataclasses.MISSING else field.default
        default = list(default) if isinstance(default, tuple) else default
        text = meta["help"].replace("{monte_carlo}", methods_registry.monte_carlo(flags=True))
        kind = meta["kind"]
        if kind in ("enum", "multi_enum"):
            choices = {"methods": METHODS, "metrics": METRICS}.get(meta["choices"],
                                                                  meta["choices"])
            getattr(flags, "DEFINE_" + kind)(field.name, default, list(choices), text)
        elif kind == "integer":
            flags.DEFINE_integer(field.name, default, text, lower_bound=meta["minimum"])
        else:
            getattr(flags, "DEFINE_" + kind)(field.name, default, text)


class _CountParser(flags.ArgumentParser):
    """An integer >= 1, or "auto" (as many draws as --target_error needs)."""

    def parse(self, argument):
        if isinstance(argument, int) or argument == "auto":
            value = argument
        else:
            try:
                value = int(argument)
            except ValueError:
                raise ValueError(f"expected an integer >= 1 or 'auto', got {argument!r}") \
                    from None
        if value != "auto" and value < 1:
            raise ValueError(f"expected an integer >= 1 or 'auto', got {argument!r}")
        return value

    def flag_type(self):
        return "int or 'auto'"


class _ChoiceOrNumberParser(flags.ArgumentParser):
    """One of some words, or a number."""

    def __init__(self, choices):
        super().__init__()
        self.choices = tuple(choices)

    def parse(self, argument):
        if argument in self.choices or isinstance(argument, (int, float)):
            return argument
        try:
            return float(argument)
        except ValueError:
            raise ValueError(f"expected one of {', '.join(self.choices)} or a number, got "
                             f"{argument!r}") from None

    def flag_type(self):
        return " or ".join(self.choices) + " or a number"


def _define_method_flags(names=None) -> None:
    """One flag per method setting (``methods.options.flag_table``; ``names``: only
    those); every one defaults to "not given" (None), which leaves each method its
    Python default."""
    for name, flag in METHOD_FLAGS.items():
        if names is not None and name not in names:
            continue
        text, option = flag.help(), flag.option
        if flag.kind == "count":
            flags.DEFINE(_CountParser(), name, None, text)
        elif flag.kind == "enum":
            flags.DEFINE_enum(name, None, list(option.choices), text)
        elif flag.kind == "enum_or_number":
            flags.DEFINE(_ChoiceOrNumberParser(option.choices), name, None, text)
        elif flag.kind == "files":
            flags.DEFINE_multi_string(name, [], text)
        elif flag.kind == "bool":
            flags.DEFINE_bool(name, None, text)
        elif flag.kind in ("int", "float"):
            (flags.DEFINE_integer if flag.kind == "int" else flags.DEFINE_float)(
                name, None, text)
            if option.bounds():                     # the declaration's, inclusive or not
                flags.register_validator(
                    name, lambda v, o=option: v is None or o.accepts(v),
                    message=f"--{name} must be {option.bounds()}.")
        else:
            flags.DEFINE_string(name, None, text)
    for name, flag in METHOD_FLAGS.items():
        if flag.option.exclusive and (names is None or name in names):
            other = flag.option.exclusive
            flags.register_multi_flags_validator(
                [name, other], lambda f, a=name, b=other: f[a] is None or f[b] is None,
                message=f"give at most one of --{name} and --{other}.")


_define_run_flags()
_define_method_flags()
COUNT_FLAGS = [name for name, flag in METHOD_FLAGS.items() if flag.kind == "count"]

flags.register_validator("output_dir", lambda value: bool(value),
                         message="--output_dir is required.")
INPUT_FLAGS = ("images", "inputs", "image_folder", "manual_dir")
flags.register_multi_flags_validator(
    list(INPUT_FLAGS), lambda f: sum(bool(f[k]) for k in INPUT_FLAGS) <= 1,
    message="give at most one input: --images, --inputs, --image_folder or --manual_dir.")
flags.register_multi_flags_validator(
    COUNT_FLAGS + ["target_error", "max_points"],
    lambda f: "auto" in [f[name] for name in COUNT_FLAGS] or (
        f["target_error"] is None and f["max_points"] is None),
    message="--target_error and --max_points apply only with "
            + ", ".join(f"--{name}" for name in COUNT_FLAGS) + " auto.")


class CommandError(Exception):
    """A problem to report in one line."""


def _loose_arguments(extra):
    """Arguments left over that are neither an option nor an option's value (``--x
    value``): typically the files of an unquoted glob the shell expanded."""
    loose, previous = [], ""
    for argument in extra:
        if not argument.startswith("-") and not (previous.startswith("--")
                                                 and "=" not in previous):
            loose.append(argument)
        previous = argument
    return loose


def main(argv):
    if len(argv) < 2 or argv[1] not in MODES:
        raise CommandError(f"expected one mode, one of {', '.join(MODES)}; got {argv[1:]}")
    extra = argv[2:]
    loose = _loose_arguments(extra)
    if loose:
        shown = " ".join(loose[:3]) + (" ..." if len(loose) > 3 else "")
        raise CommandError(f"unexpected argument(s) {shown}: to give several images, quote "
                           "the pattern (--images 'photos/*.jpg') or repeat --images")
    if extra and not FLAGS.runner:
        raise CommandError(f"unknown flag or argument: {' '.join(extra)} (Beam pipeline "
                           "options are accepted only with --runner; see --help)")
    if FLAGS.runner and argv[1] == "export":
        raise CommandError("--runner applies to explain, evaluate and adapt, not export")
    if FLAGS.convergence and (argv[1] != "evaluate" or FLAGS.runner):
        raise CommandError("--convergence applies to evaluate run in this process (no "
                           "--runner)")
    config = RunConfig.from_flags(FLAGS, beam_args=extra, method_flags=tuple(METHOD_FLAGS))
    if config.verbosity < 0:          # TensorFlow's and Beam's INFO/WARNING lines: off
        absl_logging.set_verbosity(absl_logging.ERROR)
        for name in ("tensorflow", "apache_beam", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)
    _quiet.import_tensorflow()
    if config.runner and argv[1] != "export":
        from tf_smoothtaylor.cli import beam       # Beam only when asked for
        beam.run(argv[1], config)
    else:
        from tf_smoothtaylor.cli import commands   # heavy imports after flag parsing
        commands.run(argv[1], config)


def _main_with_errors(argv):
    try:
        main(argv)
    except (CommandError, ValueError, TypeError, OSError) as error:
        print(f"tf-smoothtaylor: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("tf-smoothtaylor: interrupted; rerun the same command to resume",
              file=sys.stderr)
        sys.exit(130)


def sync_registry() -> None:
    """Brings ``--method``, ``--metric`` and the method flags up to the registries:
    methods and metrics registered since this module was imported (by a
    ``--custom_objects`` module) get their choices and flags; unregistered ones lose
    their choices."""
    global METHODS, METRICS
    table = method_options.flag_table(BY_NAME)
    new = [name for name in table if name not in FLAGS]
    METHOD_FLAGS.clear()
    METHOD_FLAGS.update(table)
    _define_method_flags(new)
    for name, flag in table.items():
        FLAGS[name].help = flag.help()
    METHODS, METRICS = tuple(BY_NAME), metrics_registry.names()
    FLAGS["method"].parser.enum_values = list(METHODS)
    FLAGS["metric"].parser.enum_values = list(METRICS)


def _plugins(argv) -> None:
    """Imports the ``--custom_objects`` modules named in ``argv`` before the flags are
    read, so that the methods and metrics they register are choices with flags."""
    names = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--custom_objects=")]
    names += [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--custom_objects"]
    if names:
        from tf_smoothtaylor.cli.loading import import_custom_objects
        import_custom_objects(names)
        sync_registry()


def _help(full: bool) -> str:
    """The usage text, then this command's flags (with ``full``, every module's after)."""
    import textwrap
    _quiet.import_tensorflow()
    from tf_smoothtaylor.models import FAMILIES
    registry = textwrap.fill("Registry models (--model, or their Keras class names): "
                             + ", ".join(FAMILIES), width=96, subsequent_indent="  ")
    reads = method_options.reads(BY_NAME)
    text = [__doc__.split("Runs resume:")[0].rstrip(), "",
            "Methods (--method) and the method flags each reads (a flag not given leaves "
            "the method its own default, shown in the flag's help):"]
    text += [textwrap.fill(f"{name}: " + " ".join(reads[name]), width=96,
                           initial_indent="  ", subsequent_indent="      ")
             for name in METHODS]
    text += ["", "Metrics (--metric): " + ", ".join(METRICS), registry, "",
             "TensorFlow's and Beam's own log lines are hidden; absl's --verbosity=0 shows "
             "them (INFO).", "",
             "Flags of tf-smoothtaylor:", FLAGS.module_help(sys.modules[__name__])]
    if full:
        others = [module for module in FLAGS.flags_by_module_dict()
                  if module != __name__]
        text += [""] + [FLAGS.module_help(module) for module in others]
    return "\n".join(text) + "\n"


def _parse_flags(argv):
    """absl flag parsing that reports a bad flag in one line (exit code 2)."""
    try:
        _plugins(argv)
    except ValueError as error:
        print(f"tf-smoothtaylor: error: {error}", file=sys.stderr)
        sys.exit(2)
    asked = set(argv[1:]) & {"--help", "-h", "-?", "--helpshort", "--helpfull"}
    if asked:
        sys.stdout.write(_help(full="--helpfull" in asked))
        sys.exit(0)
    try:
        # Unknown options stay in argv: Beam pipeline options when --runner is given.
        return FLAGS(argv, known_only=True)
    except flags.Error as error:
        print(f"tf-smoothtaylor: error: {error} (see --helpfull)", file=sys.stderr)
        sys.exit(2)


def run():
    """Console-script entry point."""
    app.run(_main_with_errors, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
