"""Tests of vae_lab/report/ (a package, so that test_command.py and friends may share basenames with
other folders' tests)."""
