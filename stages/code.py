"""code@<model>: which source files the model's tune, retrain and evaluate stages run, with their
hashes (metrics/code/<model>/<stage>.txt, in sha256sum's format).

Those stages depend on these lists instead of the whole package, so an edit reruns exactly the
stages whose code changed: the LSTM family's module reruns the LSTM's stages, the report's module
none of them.
"""

import argparse

from imdbclf import atomic, codedeps, families, outputs, params
from imdbclf.ops.stage import stage

MODEL_STAGES = ("tune", "retrain", "evaluate")


@stage("code@{}")
def main(model: str) -> str:
    family = families.family_module(params.load().model(model).family)
    for name in MODEL_STAGES:
        files = codedeps.closure(f"stages.{name}", family)
        atomic.write_text(outputs.code_manifest(model, name), codedeps.manifest(files))
    return f"{family} and the code of {', '.join(MODEL_STAGES)} listed in metrics/code/{model}/"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a name from `models:` in params.yaml")
    main(parser.parse_args().model)
