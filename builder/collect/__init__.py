"""Collection: a private site list and a STAC API -> a corpus that ``cropmark build`` accepts.

``sites`` reads the site list; ``stac`` searches the catalogue; ``fetch`` reads windows of
cloud-optimised GeoTIFFs; ``context`` provides the context half; ``remote`` retries and paces
every remote call; ``run`` chooses, writes and resumes; ``commands`` is ``cropmark collect``.
"""
