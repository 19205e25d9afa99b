"""Tests of vae_lab/variance/ (a package, so that its test files may share basenames with other folders')."""
