"""Experiments built on the reconstruction core (never imported by it).

* :mod:`.synthetic`: fastMRI-format test and demo data from the MNI152 template.
* :mod:`.study`, :mod:`.figures`: acceleration-factor studies, their tables and figures.
* :mod:`.landscape`: Hand & Voroninski's empirical-risk landscape experiments.
* :mod:`.demo`: ``mri-genprior demo``.
"""
