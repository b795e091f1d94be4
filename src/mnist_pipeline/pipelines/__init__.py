"""The project's pipelines, one package per stage (found by ``find_pipelines``)."""
