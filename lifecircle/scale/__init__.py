"""Scale out: one large area in tiles, many areas in a batch, on Dask."""
