"""The Prometheus exporter: maint.metrics() of every inventory target over HTTP (/metrics, /probe)."""
