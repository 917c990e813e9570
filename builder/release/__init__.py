"""Release: from curated composites to an audited release and its private report.

``build`` (the build: staging, pool, atomic commit), ``curate``, ``leakage``,
``licenses``, ``cards`` (dataset card, model card, Space README), ``audit`` (the
release's border post).
"""
