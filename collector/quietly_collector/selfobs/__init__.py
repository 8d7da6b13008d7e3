"""The collector observing itself: Prometheus/OTLP metrics (selfmetrics.py), JSON logs
with request ids (logs.py) and OTLP traces (tracing.py). See docs/observability.md."""
