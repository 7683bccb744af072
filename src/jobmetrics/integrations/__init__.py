"""Integrations with job queues that feed an :class:`~jobmetrics.Aggregator` from their own events.

Each integration lives in its own module and needs its extra, imported only when used:

* :mod:`jobmetrics.integrations.celery` — a Celery cluster's event stream
  (``pip install 'jobmetrics[celery]'``).
"""

from __future__ import annotations

__all__: list[str] = []
