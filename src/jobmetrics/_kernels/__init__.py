"""Every numba kernel of jobmetrics, and nothing else.

Kernels take numpy arrays and scalars only; the public classes in :mod:`jobmetrics` own the arrays,
validate options and translate results into friendly types. No numba type crosses this package's
boundary.
"""
