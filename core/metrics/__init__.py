"""Prometheus metrics that need neither torch nor a web framework.

- ``core.metrics.fleet``: the queue-depth and job-progress exporter (``tileclass metrics``, the HTTP server's
  ``/metrics``), read from the broker and the results database on each scrape.
- ``core.metrics.serving``: serving a registry on a port, and prometheus-client's multiprocess mode for a host
  whose worker processes share one port.

The workers' own counters, histograms and gauges are defined in ``worker.metrics``. Metric names are an interface
that dashboards (``deploy/grafana/tileclass.json``) and alerts rely on: the README lists them all.
"""
