"""Quality: the four gates of a tile and the halves-order check.

``thresholds`` (every gate threshold), ``gates`` (the gates' values and verdicts),
``halves`` (is the Sentinel-2 half on the left), ``sides`` (a composite's side files).
"""
