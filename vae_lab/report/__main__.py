"""`python -m vae_lab.report DIR ...`, the same as `vae-lab report DIR ...`."""

import sys

from vae_lab.report.command import main

sys.exit(main())
