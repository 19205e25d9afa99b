"""Estimator tests (a package, so that test_rsvi.py can share its basename with tests/distributions/)."""
