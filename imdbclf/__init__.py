"""The ML core of the text-classification pipeline: params, data, model families, tuning, tracking,
evaluation, statistics, reporting, serving and the registry.

Importing it changes nothing global (no environment variable, warning filter or logger): the entry
points in `imdbclf.ops` (the stage decorator, the CLI) set up the console explicitly, and the core sets
what TensorFlow needs where it loads it (`imdbclf.environment`). Operations (team services, caches, the
CPU-time guard, failpoints, the converter, the CLI) live in `imdbclf.ops`, which depends on the core and
never the other way round.
"""
