"""Training-data preparation: ReSyn-style curation (irx.data.curate)."""
