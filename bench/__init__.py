"""liteseg-bench engine: configs, data, training, evaluation, profiling and runs."""

__version__ = "0.1.0"
