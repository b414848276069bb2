"""The settings of one command-line run, built once from the flags.

:class:`RunConfig` is a frozen, picklable dataclass: the command layer builds it
from the parsed absl flags (:meth:`RunConfig.from_flags`) and everything below —
the in-process loop (``commands``) and the Apache Beam workers (``beam``) —
takes it, never the flags object itself.

The run's own settings are fields; the methods' settings are the given method
flags (``methods.options``), kept as ``method_flags`` and read as attributes
(``config.num_roots``), None where a flag was not given — each method then keeps
its Python default.
"""

import dataclasses
import os
from typing import Any, Iterable, Optional, Tuple


def setting(default, help: str, *, kind: str, choices: Any = (),
            minimum: Optional[int] = None):
    """One run setting, declared once: the field's default, and its flag's help,
    absl parser (``kind``: string, integer, bool, enum, multi_string, multi_enum),
    choices (a tuple, or "methods"/"metrics": the registries') and inclusive lower
    bound. ``help`` may name ``{monte_carlo}`` (the registry's Monte Carlo methods)."""
    metadata = {"help": help, "kind": kind, "choices": choices, "minimum": minimum}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a ``tf-smoothtaylor`` run (see ``tf-smoothtaylor --help``).

    Field names are the flag names, and each field declares its flag (``setting``):
    the command line's run flags are made from these fields. ``runner`` is a Beam runner name (None: run in
    this process); ``beam_args`` are the remaining Beam pipeline options;
    ``verbosity`` is absl's ``--verbosity`` when given, else −1 (TensorFlow's and
    Beam's own log lines kept off the terminal); ``method_flags`` holds the method
    flags that were given, ``(name, value)`` pairs.
    """

    output_dir: str = setting(
        dataclasses.MISSING,
        "Where results go (required).",
        kind="string")
    model: str = setting(
        "demo",
        "'demo', a registry name (tf_smoothtaylor.models), or the path of a .keras file or "
        "SavedModel directory.",
        kind="string")
    weights: str = setting(
        "imagenet",
        "Registry models: 'imagenet', 'none' or a file.",
        kind="string")
    preprocess: str = setting(
        "identity",
        "Pixel preprocessing of a model given by path, from pixels x in [0, 1]: identity = "
        "x unchanged; scale255 = 255·x (models that rescale inside, like EfficientNet); tf "
        "= 2x − 1; torch = (x − ImageNet mean) / std; caffe = 255·x as BGR minus the "
        "ImageNet mean.",
        kind="enum", choices=("identity", "caffe", "torch", "tf", "scale255"))
    unsafe_load: bool = setting(
        False,
        "Allow model files to run their own Python code (Keras safe_mode=False), and "
        "SavedModels whose serving graph writes, deletes or lists files or calls Python. "
        "Only for files you trust.",
        kind="bool")
    custom_objects: Tuple[str, ...] = setting(
        (),
        "Python modules to import first (a dotted module name or a .py file; repeat the "
        "flag): those that register the model's custom layers with "
        "keras.saving.register_keras_serializable, and methods or metrics "
        "(tf_smoothtaylor.methods.register, tf_smoothtaylor.metrics.registry.register).",
        kind="multi_string")
    images: Tuple[str, ...] = setting(
        (),
        "Image files or globs (repeat the flag).",
        kind="multi_string")
    inputs: Tuple[str, ...] = setting(
        (),
        "Arrays to explain instead of images (repeat the flag): .npy or .npz files, one "
        "example per row (an .npz's array x, labels in y if present), or .csv files (a "
        "header row; a 'label' column is the label). Tabular rows (rows, features), series "
        "(rows, steps, channels) or images; the values are what --preprocess receives. "
        ".txt files: one text a line, as token ids of --vocabulary.",
        kind="multi_string")
    vocabulary: Optional[str] = setting(
        None,
        "Vocabulary of --inputs .txt files: one token a line, its line number its id; "
        "texts are lower-cased and split into words and punctuation, unknown words become "
        "[UNK], [PAD] pads to the model's length.",
        kind="string")
    image_folder: Optional[str] = setting(
        None,
        "A tfds ImageFolder root (root/split/label/*).",
        kind="string")
    manual_dir: Optional[str] = setting(
        None,
        "Directory with ILSVRC2012_img_val.tar (tfds imagenet2012).",
        kind="string")
    data_dir: Optional[str] = setting(
        None,
        "tfds data directory for imagenet2012.",
        kind="string")
    limit: Optional[int] = setting(
        None,
        "Process at most this many images.",
        kind="integer", minimum=1)
    size: Optional[int] = setting(
        None,
        "Input size of registry models (default: the family's).",
        kind="integer", minimum=8)
    method: Tuple[str, ...] = setting(
        ("smooth_taylor", "integrated_gradients"),
        "Attribution methods (repeat the flag).",
        kind="multi_enum", choices="methods")
    images_per_step: int = setting(
        8,
        "Images explained together.",
        kind="integer", minimum=1)
    overwrite: bool = setting(
        False,
        "Start the run in --output_dir over when its settings differ from this command's "
        "(default: refuse once an image is finished).",
        kind="bool")
    force: bool = setting(
        False,
        "Take over an object-store --output_dir (gs://, s3://) whose lease another run "
        "holds, before its heartbeat is stale; only when that run is gone (local disks need "
        "none: their lock ends with its process).",
        kind="bool")
    metric: Optional[Tuple[str, ...]] = setting(
        None,
        "Metrics for evaluate (default: aupc, autvc, and relevance_mass when masks exist).",
        kind="multi_enum", choices="metrics")
    window: Optional[int] = setting(
        None,
        "AUPC window k (default 15; 8 for the demo).",
        kind="integer", minimum=1)
    num_regions: Optional[int] = setting(
        None,
        "AUPC regions L (default 30; 16 for the demo).",
        kind="integer", minimum=1)
    num_copies: Optional[int] = setting(
        None,
        "AUPC copies P (default 50; 20 for the demo).",
        kind="integer", minimum=1)
    min_size: Optional[int] = setting(
        None,
        "AUTVC smallest pyramid side (default 30; 10 for the demo).",
        kind="integer", minimum=2)
    objective: str = setting(
        "aupc",
        "adapt: objective to minimise.",
        kind="enum", choices=("aupc", "autvc"))
    max_iterations: int = setting(
        20,
        "adapt: line-search iterations.",
        kind="integer", minimum=0)
    top_k: int = setting(
        5,
        "export: classes returned per image.",
        kind="integer", minimum=1)
    max_batch: int = setting(
        16,
        "export: largest accepted batch of images.",
        kind="integer", minimum=1)
    include_attributions: bool = setting(
        False,
        "export: also return the full attributions.",
        kind="bool")
    include_error: bool = setting(
        False,
        "export: also return each heatmap's Monte Carlo relative error ({monte_carlo}).",
        kind="bool")
    strategy: str = setting(
        "default",
        "tf.distribute strategy of an in-process run: one device, or all local GPUs "
        "(mirrored). Past one machine use --runner.",
        kind="enum", choices=("default", "mirrored"))
    convergence: bool = setting(
        False,
        "evaluate: also write convergence.png (or --figure_format), the relative error and "
        "AUTVC of the first 3 images' maps against the number of draws (Monte Carlo "
        "methods).",
        kind="bool")
    grid_images: int = setting(
        16,
        "How many images grid.png shows (0: every image of the run); the output says how "
        "many it shows.",
        kind="integer", minimum=0)
    figure_format: str = setting(
        "png",
        "Format of the run's figures, grid and convergence (pdf or svg for papers).",
        kind="enum", choices=("png", "pdf", "svg"))
    runner: Optional[str] = setting(
        None,
        "Run explain/evaluate/adapt as an Apache Beam pipeline on this runner "
        "(DirectRunner, DaskRunner, DataflowRunner, FlinkRunner, SparkRunner, "
        "PortableRunner, PrismRunner; needs the [beam] extra, [dask] for DaskRunner, "
        "[dataflow] for DataflowRunner). Every other option after the mode that is not a "
        "flag of this command is passed to Beam with the runner's own options, e.g. "
        "--direct_num_workers=2, --dask_client_address=tcp://HOST:8786, "
        "--flink_master=HOST:8081, --project/--region/--temp_location. Default: run in this "
        "process.",
        kind="string")
    beam_args: Tuple[str, ...] = ()
    verbosity: int = -1
    method_flags: Tuple[Tuple[str, Any], ...] = ()

    def __getattr__(self, name: str) -> Any:
        """A method flag: its value, or None when it was not given."""
        if name.startswith("__") or name == "method_flags":
            raise AttributeError(name)
        return dict(self.method_flags).get(name)

    @property
    def given(self) -> dict:
        """The method flags that were given, name -> value."""
        return dict(self.method_flags)

    @classmethod
    def from_flags(cls, flags, *, beam_args=(), method_flags=()) -> "RunConfig":
        """The config of parsed absl ``flags`` (lists become tuples); ``method_flags``
        names the flags made from the methods' declarations."""
        def value(name):
            found = getattr(flags, name)
            return tuple(found) if isinstance(found, list) else found

        values = {field.name: value(field.name) for field in dataclasses.fields(cls)
                  if field.name not in ("beam_args", "verbosity", "method_flags")}
        given = tuple((name, value(name)) for name in method_flags
                      if value(name) not in (None, ()))
        verbosity = flags.verbosity if flags["verbosity"].present else -1
        return cls(beam_args=tuple(beam_args), verbosity=verbosity, method_flags=given,
                   **values)

    def replace(self, **changes) -> "RunConfig":
        """A copy with some fields (or method flags) changed."""
        names = {field.name for field in dataclasses.fields(self)}
        flags = dict(self.method_flags)
        for name in [n for n in changes if n not in names]:
            value = changes.pop(name)
            if value in (None, ()):
                flags.pop(name, None)
            else:
                flags[name] = tuple(value) if isinstance(value, list) else value
        return dataclasses.replace(self, method_flags=tuple(sorted(flags.items())), **changes)

    def with_absolute_paths(self, file_flags: Iterable[str] = ()) -> "RunConfig":
        """A copy whose local paths are absolute (object-store URLs, registry names and
        ``imagenet``/``none`` unchanged), so that Beam workers started in other folders
        find the same files: ``--output_dir``, ``--images`` patterns, the input
        folders, ``--model`` and ``--weights`` files, ``--custom_objects`` files and
        the method flags ``file_flags`` (e.g. ``references``)."""
        def absolute(path):
            return path if not path or "://" in path else os.path.abspath(path)

        def existing(path):
            return absolute(path) if path and os.path.exists(path) else path

        changes = {
            "output_dir": absolute(self.output_dir),
            "images": tuple(absolute(pattern) for pattern in self.images),
            "inputs": tuple(absolute(path) for path in self.inputs),
            "vocabulary": absolute(self.vocabulary),
            "image_folder": absolute(self.image_folder),
            "manual_dir": absolute(self.manual_dir),
            "data_dir": absolute(self.data_dir),
            "model": existing(self.model),
            "weights": existing(self.weights),
            "custom_objects": tuple(absolute(name) if name.endswith(".py") else name
                                    for name in self.custom_objects),
        }
        for flag in file_flags:
            value = self.given.get(flag)
            if value:
                changes[flag] = tuple(absolute(path) for path in value)
        return self.replace(**changes)

