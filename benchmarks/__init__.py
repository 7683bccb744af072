"""jobmetrics benchmarks: pytest-benchmark files (``bench_*.py``), the accuracy study
(:mod:`benchmarks.accuracy`) and the report that regenerates the published figures
(``python -m benchmarks.report``)."""
