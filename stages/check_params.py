"""check-params: validate all of params.yaml whenever it changes.

The other stages read only their own sections, so DVC would call a misspelt or unknown key elsewhere
"up to date" until some stage happened to run; this stage depends on the whole file and fails the
next `dvc repro` on it, in one line naming the key. Its mark (always the same line) is a dependency
of fetch and code@, so DVC runs it before any command that holds a model's name or the data's source.
"""

from imdbclf import atomic, outputs, params
from imdbclf.ops.stage import stage


@stage("check-params")
def main() -> str:
    p = params.load()
    atomic.write_text(outputs.PARAMS_CHECKED, f"{params.PARAMS_FILE} is valid\n")
    return f"{params.PARAMS_FILE} is valid; models {', '.join(p.models)}"


if __name__ == "__main__":
    main()
