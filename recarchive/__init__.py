"""recarchive: exact neural lossless archival of image datasets.

Layers, with imports pointing one way (lower never imports higher):
  ans, exact, entropy   coding core (no models, no I/O)
  models, codecs        neural models and the codecs that drive the coder with them
  archive, storage      the Parquet archive format and object storage
  jobs (distributed), cli
"""

__version__ = "0.1.0"
