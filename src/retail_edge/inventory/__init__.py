"""Live inventory API of a store: stock synced from HQ, local sales, and pickup (BOPIS) promises."""
