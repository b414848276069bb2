"""Packaging for tf-smoothtaylor."""

from setuptools import find_packages, setup

setup(
    name="tf-smoothtaylor",
    version="0.1.0",
    description=("SmoothTaylor, Integrated Gradients and SmoothGrad attributions for "
                 "Keras image classifiers, with the AUPC and AUTVC metrics"),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_smoothtaylor", "tf_smoothtaylor.*"]),
    python_requires=">=3.9",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        "importlib_resources",
        "numpy",
        "absl-py",
        "filelock>=3.12",           # the run directory's lock (ends with its process)
        "matplotlib>=3.5",          # the run's figures (grid, convergence) and tf_smoothtaylor.viz.plot
    ],
    package_data={"tf_smoothtaylor": ["demo/assets/*"]},
    include_package_data=True,
    entry_points={"console_scripts": ["tf-smoothtaylor=tf_smoothtaylor.cli.main:run"]},
    extras_require={
        "tensorboard": ["tensorboard"],
        "serving": ["tensorflow-serving-api", "grpcio"],
        "beam": ["apache-beam>=2.60"],
        # Beam's DaskRunner on a dask.distributed cluster (scheduler and workers).
        "dask": ["apache-beam[dask]>=2.60"],
        # Beam's DataflowRunner (Google Cloud clients).
        "dataflow": ["apache-beam[gcp]>=2.60"],
        # KerasHub's text and vision models (BERT, ViT, ...) and their tokenizers.
        "text": ["keras-hub"],
        "test": ["pytest", "pytest-xdist", "scikit-image", "scipy", "tensorboard",
                 "apache-beam[dask]>=2.60", "nbclient", "nbformat", "ipykernel", "keras-hub",
                 "scikit-learn"],
    },
    license="Apache-2.0",
)
