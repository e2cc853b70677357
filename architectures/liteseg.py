"""LiteSeg (Emara et al. 2019). Filled in by the LiteSeg port."""
