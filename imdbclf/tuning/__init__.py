"""The hyperparameter search: strategies (`search`) over Optuna studies used as a queue (`queue`) in a
storage shared by every experiment, worker and machine (`storage`); finished trials reused while their
reuse key (`reuse`) is unchanged; trials trained by workers (`workers`), the whole search run from the
tune stage with its local worker processes (`run`)."""

from imdbclf.tuning.queue import Worker, fail_dead_trials, make_pruner, open_study, study_name, worker_identity
from imdbclf.tuning.reuse import reuse_key, trial_key
from imdbclf.tuning.search import Search, best_choice, count_trials_to_train, planned_trials, search_summary
from imdbclf.tuning.storage import open_storage, redact_storage_url, storage_errors, storage_url
from imdbclf.tuning.trials import TrialResult, best_of, config_label, record

__all__ = ["Search", "TrialResult", "Worker", "best_choice", "best_of", "config_label", "fail_dead_trials",
           "make_pruner", "open_storage", "open_study", "planned_trials", "record", "redact_storage_url", "reuse_key",
           "search_summary", "storage_errors", "storage_url", "study_name", "trial_key", "count_trials_to_train",
           "worker_identity"]
