"""Batch scoring with the production model on Spark.

``kedro run --env gcp --pipelines batch_scoring`` (see docs/operations.md).

* :mod:`.inputs`  list inputs on the driver, read them in the executors (fsspec)
* :mod:`.model`   pin ``models:/<name>@<alias>`` once, ship it, load it once per worker
* :mod:`.batch`   score one partition's items and write its Parquet part (Spark-free)
* :mod:`.output`  the output folder: parts, manifest written last, reading it back
* :mod:`.spark`   the Spark job that ties them together
"""
