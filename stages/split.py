"""split: stratified train/validation split of the training reviews, grouped by movie so that
validation, like the official test set, holds movies never seen in training; test untouched → parquet."""

from imdbclf import atomic, data, outputs, params, tracking
from imdbclf.ops.stage import stage


@stage("split")
def main() -> str:
    p = params.load()
    s = p.split
    with tracking.stage_run(p, "split", {"split": s.model_dump()}):
        grouped = s.group_by == "movie"
        train, val = data.split_train_val(data.read_reviews(outputs.RAW, "train", movies_required=grouped),
                                          s.val_fraction, s.seed, s.group_by)
        splits = {
            "train": data.stratified_sample(train, s.max_train, s.seed, "split.max_train"),
            "val": data.stratified_sample(val, s.max_val, s.seed, "split.max_val"),
            "test": data.stratified_sample(data.read_reviews(outputs.RAW, "test", grouped), s.max_test, s.seed,
                                           "split.max_test"),
        }
        for name, frame in splits.items():
            atomic.write_parquet(frame, outputs.prepared(name))
        tracking.log_datasets(tracking.split_datasets(*(data.Split.from_frame(n, f) for n, f in splits.items())))
        stats = data.split_stats(splits)
        atomic.write_json(outputs.DATA_METRICS, stats)
        tracking.log_metrics({f"{name}_count": v["count"] for name, v in stats["splits"].items()})
        tracking.log_metrics({f"duplicates_within_{k}": v for k, v in stats["duplicates"]["within"].items()})
        tracking.log_metrics({f"duplicates_across_{k}": v for k, v in stats["duplicates"]["across"].items()})
        for pair, shared in stats.get("movies", {}).get("shared", {}).items():
            tracking.log_metrics({f"movies_shared_{pair}": shared})
        tracking.log_dict(stats, "data.json")
    return ", ".join(f"{k} {v['count']}" for k, v in stats["splits"].items())


if __name__ == "__main__":
    main()
