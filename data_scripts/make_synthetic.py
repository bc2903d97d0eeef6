"""Write synthetic fastMRI-format multi-coil brain files (same as ``mri-genprior synth``).

Example::

    python data_scripts/make_synthetic.py -o data/synth --files 4 --slices 8 --size 128
"""

import sys

from mri_genprior.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
