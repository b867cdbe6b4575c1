"""Training-data generation: real chest backgrounds, synthetic lesions, acquisition simulation, phantoms.

Offline tooling for ``lunglesion train``; nothing here runs during inference.
"""
