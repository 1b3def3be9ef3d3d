"""The pipeline's stages: one entry point per DVC stage of dvc.yaml, each reading as its stage's story."""
