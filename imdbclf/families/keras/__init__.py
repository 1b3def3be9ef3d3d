"""The Keras families (tf-keras): a shared base with the fit loop, their optimizers and callbacks."""
