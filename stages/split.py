"""split: the fetched texts → train, validation and test, stratified by class and grouped by the
source's groups (IMDB: the movie) so that validation, like the official test set, holds groups never seen
in training; a table without a test table gives up split.test_fraction of itself → parquet, with the
class names (sorted) in data/prepared/meta.json."""

from imdbclf import atomic, data, outputs, params, tracking
from imdbclf.ops.stage import stage


@stage("split")
def main() -> str:
    p = params.load()
    s = p.split
    with tracking.stage_run(p, "split", {"split": s.model_dump()}):
        grouped = s.group_by != "none" and (p.data.format == "aclimdb" or p.data.group_column is not None)
        train = data.sources.read(outputs.RAW, p.data, "train", grouped)
        test = data.sources.read(outputs.RAW, p.data, "test", grouped)
        classes = data.class_names(train["label"], data.redact_url(p.data.source))
        train = data.encode_labels(train, classes, data.redact_url(p.data.source))
        if test is None:
            train, test = data.split_off(train, s.test_fraction, s.seed, grouped, "split.test_fraction", classes,
                                         ("train", "test"))
        else:
            test = data.encode_labels(test, classes, data.redact_url(p.data.test_source or p.data.source))
        train, val = data.split_train_val(train, s.val_fraction, s.seed, "group" if grouped else "none", classes)
        splits = {
            "train": data.stratified_sample(train, s.max_train, s.seed, "split.max_train"),
            "val": data.stratified_sample(val, s.max_val, s.seed, "split.max_val"),
            "test": data.stratified_sample(test, s.max_test, s.seed, "split.max_test"),
        }
        meta = {"classes": list(classes), "group": data.group_column(splits["train"]),
                "train_counts": data.class_counts(splits["train"]["label"], len(classes)).tolist()}
        for name, frame in splits.items():
            atomic.write_parquet(frame, outputs.prepared_file(name))
        atomic.write_json(outputs.PREPARED / data.META, meta)
        tracking.log_datasets(tracking.split_datasets(*(data.Split.from_frame(n, f, classes)
                                                        for n, f in splits.items())))
        stats = data.split_stats(splits, classes)
        atomic.write_json(outputs.DATA_METRICS, stats)
        tracking.log_metrics({f"{name}_count": v["count"] for name, v in stats["splits"].items()})
        tracking.log_metrics({f"duplicates_within_{k}": v for k, v in stats["duplicates"]["within"].items()})
        tracking.log_metrics({f"duplicates_across_{k}": v for k, v in stats["duplicates"]["across"].items()})
        for pair, shared in stats.get(f"{meta['group']}s", {}).get("shared", {}).items():
            tracking.log_metrics({f"{meta['group']}s_shared_{pair}": shared})
        tracking.log_dict(stats, "data.json")
    return ", ".join(f"{k} {v['count']}" for k, v in stats["splits"].items()) + f"; {len(classes)} classes"


if __name__ == "__main__":
    main()
