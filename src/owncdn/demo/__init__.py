"""A small demo origin and the one-machine CDN of `owncdn up`."""
