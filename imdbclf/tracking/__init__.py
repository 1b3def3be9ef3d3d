"""MLflow: where the store is (`store`), the run lifecycle (`runs`) and what a run records (`log`)."""

from imdbclf.tracking.log import (
    log_artifact,
    log_datasets,
    log_dict,
    log_metrics,
    log_metrics_at_step,
    log_params,
    log_resumed,
    set_tag,
    split_datasets,
)
from imdbclf.tracking.runs import (
    child_run,
    close_dead_runs,
    log_reused_trial,
    mark_killed,
    process_tags,
    run_tags,
    setup,
    stage_run,
    trial_run,
)
from imdbclf.tracking.store import artifact_root, check_store, runs_link, tracking_uri, with_retries

__all__ = ["artifact_root", "check_store", "child_run", "close_dead_runs", "log_artifact", "log_datasets",
           "log_dict", "log_metrics", "log_metrics_at_step", "log_params", "log_resumed", "log_reused_trial",
           "mark_killed", "process_tags", "run_tags", "runs_link", "set_tag", "setup", "split_datasets",
           "stage_run", "tracking_uri", "trial_run", "with_retries"]
