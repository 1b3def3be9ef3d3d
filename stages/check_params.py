"""check-params: validate all of params.yaml whenever it changes.

The other stages read only their own sections, so DVC would call a misspelt or unknown key elsewhere
"up to date" until some stage happened to run; this stage depends on the whole file and fails the
next `dvc repro` on it, in one line naming the key.
"""

from imdbclf import params
from imdbclf.ops.stage import stage


@stage("check-params")
def main() -> str:
    p = params.load()
    return f"{params.PARAMS_FILE} is valid; models {', '.join(p.models)}"


if __name__ == "__main__":
    main()
