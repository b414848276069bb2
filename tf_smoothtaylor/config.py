"""The settings of one command-line run, built once from the flags.

:class:`RunConfig` is a frozen, picklable dataclass: the command layer builds it
from the parsed absl flags (:meth:`RunConfig.from_flags`) and everything below —
the in-process loop (``commands``) and the Apache Beam workers (``beam``) —
takes it, never the flags object itself.
"""

import dataclasses
from typing import Optional, Tuple, Union


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of a ``tf-smoothtaylor`` run (see ``tf-smoothtaylor --help``).

    Field names are the flag names. ``runner`` is a Beam runner name (None: run in
    this process); ``beam_args`` are the remaining Beam pipeline options;
    ``verbosity`` is absl's ``--verbosity`` when given, else −1 (TensorFlow's and
    Beam's own log lines kept off the terminal).
    """

    output_dir: str
    model: str = "demo"
    weights: str = "imagenet"
    preprocess: str = "identity"
    unsafe_load: bool = False
    images: Tuple[str, ...] = ()
    image_folder: Optional[str] = None
    manual_dir: Optional[str] = None
    data_dir: Optional[str] = None
    limit: Optional[int] = None
    size: Optional[int] = None
    method: Tuple[str, ...] = ("smooth_taylor", "integrated_gradients")
    num_roots: Union[int, str] = 150
    noise_scale: Optional[float] = None
    noise_level: Optional[float] = None
    steps: int = 50
    rule: str = "riemann_right"
    baseline: str = "zero"
    num_baselines: Union[int, str] = 1
    num_samples: Union[int, str] = 50
    target_error: Optional[float] = None
    max_points: Optional[int] = None
    layer: Optional[str] = None
    occlusion_window: int = 16
    occlusion_stride: Optional[int] = None
    num_masks: Union[int, str] = 2000
    grid_size: int = 7
    keep_probability: float = 0.5
    max_sigma: Optional[float] = None
    references: Tuple[str, ...] = ()
    batch_size: int = 64
    images_per_step: int = 8
    seed: int = 0
    overwrite: bool = False
    metric: Optional[Tuple[str, ...]] = None
    window: Optional[int] = None
    num_regions: Optional[int] = None
    num_copies: Optional[int] = None
    min_size: Optional[int] = None
    objective: str = "aupc"
    max_iterations: int = 20
    jit_compile: bool = False
    top_k: int = 5
    max_batch: int = 16
    include_attributions: bool = False
    include_error: bool = False
    strategy: str = "default"
    convergence: bool = False
    runner: Optional[str] = None
    beam_args: Tuple[str, ...] = ()
    verbosity: int = -1

    @classmethod
    def from_flags(cls, flags, *, beam_args=()) -> "RunConfig":
        """The config of parsed absl ``flags`` (lists become tuples)."""
        values = {}
        for field in dataclasses.fields(cls):
            if field.name in ("beam_args", "verbosity"):
                continue
            value = getattr(flags, field.name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
        verbosity = flags.verbosity if flags["verbosity"].present else -1
        return cls(beam_args=tuple(beam_args), verbosity=verbosity, **values)

    def replace(self, **changes) -> "RunConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
