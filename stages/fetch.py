"""fetch: the IMDB archive (URL, local .tar.gz or directory) → data/raw/{train,test}/{pos,neg}/."""

from imdbclf import data, params, paths, tracking
from imdbclf.errors import exit_on_user_error


@exit_on_user_error
def main() -> None:
    p = params.load()
    with tracking.stage_run(p, "fetch", {"data": p.data.model_dump()}):
        count = data.fetch(p.data.source, paths.RAW, p.data.sha256, p.data.timeout_s)
        tracking.log_metrics({"reviews": count})
        print(f"fetch: {count} labelled reviews in {paths.RAW}/")


if __name__ == "__main__":
    main()
