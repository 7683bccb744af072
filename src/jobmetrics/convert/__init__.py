"""Adapters from public job and request traces to jobmetrics event logs (SPEC §1)."""
