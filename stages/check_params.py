"""check-params: validate all of params.yaml whenever it changes.

The other stages read only their own sections, so DVC would call a misspelt or unknown key elsewhere
"up to date" until some stage happened to run; this stage depends on the whole file and fails the
next `dvc repro` on it, in one line naming the key.
"""

from imdbclf import params
from imdbclf.errors import exit_on_user_error


@exit_on_user_error
def main() -> None:
    p = params.load()
    print(f"check-params: {params.PARAMS_FILE} is valid; models {', '.join(p.models)}")


if __name__ == "__main__":
    main()
