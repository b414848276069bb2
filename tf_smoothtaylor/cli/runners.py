"""Which Beam runner ``--runner`` names, and the pipeline options of a run: the
runner's own options passed through, unknown ones refused."""

import logging

from apache_beam.options.pipeline_options import PipelineOptions

from tf_smoothtaylor.cli.config import RunConfig

# Runners Beam does not list among its known names, and the module that defines each
# (importing it registers the runner's own options, e.g. --dask_client_address).
EXTRA_RUNNERS = {"daskrunner": "apache_beam.runners.dask.dask_runner.DaskRunner"}
# The tf-smoothtaylor extra that brings a runner's packages.
RUNNER_EXTRAS = {"daskrunner": "dask", "dataflowrunner": "dataflow"}
RUNNER_NAMES = ("DirectRunner", "DaskRunner", "DataflowRunner", "FlinkRunner", "SparkRunner",
                "PortableRunner", "PrismRunner")


def runner_path(name: str) -> str:
    """The runner Beam should create for ``--runner name`` (Beam's spelling: any case,
    with or without "Runner", or a qualified class name), its options registered."""
    key = name.lower() if name.lower().endswith("runner") else name.lower() + "runner"
    path = EXTRA_RUNNERS.get(key, name)
    module = path.rsplit(".", 1)[0] if "." in path else None
    if key == "dataflowrunner":
        module = "apache_beam.runners.dataflow.internal.apiclient"
    if module is not None:
        try:
            __import__(module)
        except ImportError as error:
            extra = RUNNER_EXTRAS.get(key)
            hint = (f"pip install 'tf-smoothtaylor[{extra}]'" if extra else
                    f"install the packages of {path}")
            raise ValueError(f"--runner {name} needs packages that are not installed "
                             f"({error.name or error}): {hint}") from None
    return path


def pipeline_options(config: RunConfig) -> PipelineOptions:
    """Beam options from ``--runner`` and the pass-through arguments (every runner's
    own options, e.g. ``--dask_client_address``, ``--flink_master``, ``--project``);
    options neither tf-smoothtaylor nor Beam knows are an error (a misspelt flag
    must not vanish)."""
    arguments = list(config.beam_args)
    if not any(a.startswith("--default_sdk_harness_log_level") for a in arguments):
        arguments.append("--default_sdk_harness_log_level=WARNING")   # workers: no INFO chatter
    path = runner_path(config.runner)
    if path == EXTRA_RUNNERS["daskrunner"] and not any(
            a.startswith(("--dask_npartitions", "--dask_partition_size")) for a in arguments):
        # One step (--images_per_step images) per Dask task, so that the scheduler
        # spreads the steps over the workers (Beam's default puts 128 in one task).
        arguments.append("--dask_partition_size=1")
    options = PipelineOptions(arguments, runner=path)
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)          # we report unknown options ourselves
    try:
        known = options.get_all_options(retain_unknown_options=False)
    finally:
        beam_logger.setLevel(level)
    every = options.get_all_options(retain_unknown_options=True)
    unknown = sorted(set(every) - set(known))
    if unknown:
        raise ValueError("unknown option(s) for tf-smoothtaylor or Beam: "
                         + ", ".join(f"--{name}" for name in unknown))
    return options
