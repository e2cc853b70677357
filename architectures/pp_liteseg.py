"""PP-LiteSeg (Peng et al. 2022). Filled in by the PP-LiteSeg port."""
