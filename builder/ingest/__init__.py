"""Ingest: the private corpus read into rows, sites and checked composites.

``corpus`` (manifests, ``sites.csv``), ``sources`` (the vetted registry of record
sources), ``composite`` (a composite as displayed, and its cut), ``scrub`` (JPEG
marker segments).
"""
