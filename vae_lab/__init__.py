"""vae-lab: gradient estimators for variational autoencoders."""

from vae_lab import lean_imports

lean_imports.install()  # Lightning's import without torchmetrics' SciPy and matplotlib (a second per job)
