"""Generators for tests, the demo and benchmarks; no pipeline module imports them.

- :mod:`builder.testing.tiny`: a seeded tiny random LFM2-VL (its public names are
  re-exported here), the model the Space and the scorer fall back to offline;
- :mod:`builder.testing.standin`: a random-weight LFM2.5-VL-450M at its real sizes
  (``write_standin``), for speed and memory figures;
- :mod:`builder.testing.sample`: the seeded card-scale private corpus (``generate``,
  ``Plan``, ``SMALL_PLAN``). It is imported by its module name, not from here: it reads
  rasters (rasterio), and the Space ships this package without them.
"""

from builder.testing.tiny import TINY_KIND, random_model_kind, write_tiny_lfm2_vl

__all__ = ["TINY_KIND", "random_model_kind", "write_tiny_lfm2_vl"]
