"""fetch: the data source (the IMDB archive: URL, local .tar.gz or directory; or a table of labelled
texts) → data/raw/."""

from imdbclf import data, outputs, params, tracking
from imdbclf.ops.stage import stage


@stage("fetch")
def main() -> str:
    p = params.load()
    logged = {**p.data.of_its_format(), "source": data.redact_url(p.data.source)}  # no password in MLflow
    if p.data.test_source:
        logged["test_source"] = data.redact_url(p.data.test_source)
    with tracking.stage_run(p, "fetch", {"data": logged}):
        count = data.sources.fetch(p.data, outputs.RAW)
        tracking.log_metrics({"texts": count})
    return f"{count} labelled texts in {outputs.RAW}/"


if __name__ == "__main__":
    main()
