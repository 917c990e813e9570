"""Layouts: the release written as imagefolder or a sibling layout, and its audit.

``base`` (layout options, checks and conversion), ``parquet``, ``sft_jsonl``, ``hdf5``,
``audit`` (a sibling layout's border post), ``policy`` (what a release may publish).
"""
