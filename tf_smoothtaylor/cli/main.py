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
flags.DEFINE_string("model", "demo", "'demo', a registry name (tf_smoothtaylor.models), "
                    "or the path of a .keras file or SavedModel directory.")
flags.DEFINE_string("weights", "imagenet", "Registry models: 'imagenet', 'none' or a file.")
flags.DEFINE_enum("preprocess", "identity", ["identity", "caffe", "torch", "tf", "scale255"],
                  "Pixel preprocessing of a model given by path, from pixels x in [0, 1]: "
                  "identity = x unchanged; scale255 = 255·x (models that rescale inside, "
                  "like EfficientNet); tf = 2x − 1; torch = (x − ImageNet mean) / std; "
                  "caffe = 255·x as BGR minus the ImageNet mean.")
flags.DEFINE_bool("unsafe_load", False, "Allow model files to run their own Python code "
                  "(Keras safe_mode=False), and SavedModels whose serving graph writes, "
                  "deletes or lists files or calls Python. Only for files you trust.")
flags.DEFINE_multi_string("custom_objects", [], "Python modules to import first (a dotted "
                          "module name or a .py file; repeat the flag): those that register "
                          "the model's custom layers with "
                          "keras.saving.register_keras_serializable, and methods or metrics "
                          "(tf_smoothtaylor.methods.register, "
                          "tf_smoothtaylor.metrics.registry.register).")
flags.DEFINE_multi_string("images", [], "Image files or globs (repeat the flag).")
flags.DEFINE_string("image_folder", None, "A tfds ImageFolder root (root/split/label/*).")
flags.DEFINE_string("manual_dir", None, "Directory with ILSVRC2012_img_val.tar (tfds imagenet2012).")
flags.DEFINE_string("data_dir", None, "tfds data directory for imagenet2012.")
flags.DEFINE_integer("limit", None, "Process at most this many images.", lower_bound=1)
flags.DEFINE_integer("size", None, "Input size of registry models (default: the family's).",
                     lower_bound=8)
flags.DEFINE_multi_enum("method", list(RunConfig.method), METHODS,
                        "Attribution methods (repeat the flag).")


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


_define_method_flags()
COUNT_FLAGS = [name for name, flag in METHOD_FLAGS.items() if flag.kind == "count"]
flags.DEFINE_integer("images_per_step", 8, "Images explained together.", lower_bound=1)
flags.DEFINE_string("output_dir", None, "Where results go (required).")
flags.DEFINE_bool("overwrite", False, "Start the run in --output_dir over when its settings "
                  "differ from this command's (default: refuse once an image is finished).")
flags.DEFINE_bool("force", False, "Take over an object-store --output_dir (gs://, s3://) whose "
                  "lease another run holds, before its heartbeat is stale; only when that run "
                  "is gone (local disks need none: their lock ends with its process).")
flags.DEFINE_multi_enum("metric", None, METRICS, "Metrics for evaluate (default: aupc, autvc, "
                        "and relevance_mass when masks exist).")
flags.DEFINE_integer("window", None, "AUPC window k (default 15; 8 for the demo).", lower_bound=1)
flags.DEFINE_integer("num_regions", None, "AUPC regions L (default 30; 16 for the demo).",
                     lower_bound=1)
flags.DEFINE_integer("num_copies", None, "AUPC copies P (default 50; 20 for the demo).",
                     lower_bound=1)
flags.DEFINE_integer("min_size", None, "AUTVC smallest pyramid side (default 30; 10 for the "
                     "demo).", lower_bound=2)
flags.DEFINE_bool("convergence", False, "evaluate: also write convergence.png (or "
                  "--figure_format), the "
                  "relative error and AUTVC of the first 3 images' maps against the number "
                  "of draws (Monte Carlo methods).")
flags.DEFINE_integer("grid_images", 16, "How many images grid.png shows (0: every image of "
                     "the run); the output says how many it shows.", lower_bound=0)
flags.DEFINE_enum("figure_format", "png", ["png", "pdf", "svg"], "Format of the run's "
                  "figures, grid and convergence (pdf or svg for papers).")
flags.DEFINE_enum("objective", "aupc", ["aupc", "autvc"], "adapt: objective to minimise.")
flags.DEFINE_integer("max_iterations", 20, "adapt: line-search iterations.", lower_bound=0)
flags.DEFINE_integer("top_k", 5, "export: classes returned per image.", lower_bound=1)
flags.DEFINE_integer("max_batch", 16, "export: largest accepted batch of images.",
                     lower_bound=1)
flags.DEFINE_bool("include_attributions", False, "export: also return the full attributions.")
flags.DEFINE_bool("include_error", False, "export: also return each heatmap's Monte Carlo "
                  f"relative error ({methods_registry.monte_carlo(flags=True)}).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                  "tf.distribute strategy of an in-process run: one device, or all local "
                  "GPUs (mirrored). Past one machine use --runner.")
flags.DEFINE_string("runner", None, "Run explain/evaluate/adapt as an Apache Beam pipeline on "
                    "this runner (DirectRunner, DaskRunner, DataflowRunner, FlinkRunner, "
                    "SparkRunner, PortableRunner, PrismRunner; needs the [beam] extra, "
                    "[dask] for DaskRunner, [dataflow] for DataflowRunner). Every other "
                    "option after the mode that is not a flag of this command is passed to "
                    "Beam with the runner's own options, e.g. --direct_num_workers=2, "
                    "--dask_client_address=tcp://HOST:8786, --flink_master=HOST:8081, "
                    "--project/--region/--temp_location. Default: run in this process.")

flags.register_validator("output_dir", lambda value: bool(value),
                         message="--output_dir is required.")
flags.register_multi_flags_validator(
    ["images", "image_folder", "manual_dir"],
    lambda f: sum(bool(f[k]) for k in ("images", "image_folder", "manual_dir")) <= 1,
    message="give at most one input: --images, --image_folder or --manual_dir.")
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
