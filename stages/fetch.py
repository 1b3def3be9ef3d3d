"""fetch: the IMDB archive (URL, local .tar.gz or directory) → data/raw/{train,test}/{pos,neg}/."""

from imdbclf import console, data, params, paths, tracking


@console.stage("fetch")
def main() -> str:
    p = params.load()
    with tracking.stage_run(p, "fetch", {"data": p.data.model_dump()}):
        count = data.fetch(p.data.source, paths.RAW, p.data.sha256, p.data.timeout_s)
        tracking.log_metrics({"reviews": count})
    return f"{count} labelled reviews in {paths.RAW}/"


if __name__ == "__main__":
    main()
