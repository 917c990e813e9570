"""Raster: raw Sentinel-2 bands and what is computed from them.

``bands`` (bands to reflectance on the 10 m grid, side rasters, the false colour),
``indices`` (vegetation indices and the composite's proxies), ``clouds`` (s2cloudless).
"""
