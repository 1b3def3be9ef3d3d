"""fetch: the IMDB archive (URL, local .tar.gz or directory) → data/raw/{train,test}/{pos,neg}/."""

from imdbclf import data, outputs, params, tracking
from imdbclf.ops.stage import stage


@stage("fetch")
def main() -> str:
    p = params.load()
    logged = {**p.data.model_dump(), "source": data.shown(p.data.source)}  # no password in MLflow
    with tracking.stage_run(p, "fetch", {"data": logged}):
        count = data.fetch(p.data.source, outputs.RAW, p.data.sha256, p.data.timeout_s, data.Limits.of(p.data))
        tracking.log_metrics({"reviews": count})
    return f"{count} labelled reviews in {outputs.RAW}/"


if __name__ == "__main__":
    main()
