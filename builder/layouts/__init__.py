"""Layouts: the release written as imagefolder or a sibling layout, and its audit.

``base`` (the ``Layout`` protocol, layout options and samples), ``registry`` (THE list of
layouts: add one there), ``imagefolder`` (the primary layout), ``parquet``, ``sft_jsonl``,
``hdf5`` (each a writer, its card ``configs``, its audit checks and its ``LAYOUT``),
``audit`` (a sibling layout's border post), ``policy`` (what a release may publish).
"""
