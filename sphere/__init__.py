"""Numerics on the sphere shared by the data (data/) and the models (models/): plain tensors, no knowledge of either,
so that neither imports the other."""
