"""Numerics on the sphere shared by the data (data/) and the models (models/): plain tensors, no knowledge of either,
so that neither imports the other."""

# The shallow-water invariants of `sphere.diagnostics.Invariants`, in its order. Here, where importing costs no torch,
# so that reports and plots can name them.
INVARIANTS = ("mass", "energy", "potential_enstrophy")
