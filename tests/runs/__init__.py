"""Tests of vae_lab/runs/, one module per module."""
