"""Reports of a snapshot: the figures of an interval (:mod:`.model`), the terminal view
(:mod:`.terminal`), charts (:mod:`.plot`, needs the ``plot`` extra) and a self-contained HTML page
(:mod:`.html`)."""

from __future__ import annotations

from .model import EndpointFigures, Report, SnapshotError, build_report, load_snapshot

__all__ = ["EndpointFigures", "Report", "SnapshotError", "build_report", "load_snapshot"]
