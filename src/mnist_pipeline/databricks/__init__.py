"""Running the project on Databricks: the Asset Bundle's generator and checks, and the
production deploy job's own steps (endpoint update, smoke test). See docs/databricks.md.

Nothing here is imported by the pipelines: only ``make bundle``, the bundle tests and the
``mnist-pipeline-databricks`` entry point of the deploy job use it.
"""
