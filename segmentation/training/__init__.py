"""Training of the lung/lesion network: synthetic cases, the sample cache, the training loop, user data."""
