"""Per-account directories (practitioners, locations, products…) that agents search."""
