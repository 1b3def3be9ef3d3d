import numpy as np
import pandas as pd

from imdbclf.reporting import figures, markdown


def test_most_confidently_wrong_orders_by_confidence():
    frame = pd.DataFrame({"text": list("abcd"), "label": [1, 0, 1, 0]})
    proba = np.array([0.1, 0.95, 0.8, 0.4])  # a and b are wrong; b more confidently
    worst = markdown.most_confidently_wrong(frame, proba, (proba >= 0.5).astype(int), n=10)
    assert list(worst["text"]) == ["b", "a"]
    # three classes: the probability of the predicted class; c is right, however sure
    frame = pd.DataFrame({"text": list("abcd"), "label": [2, 0, 1, 0]})
    worst = markdown.most_confidently_wrong(frame, np.array([0.5, 0.9, 0.99, 0.4]), np.array([0, 1, 1, 2]), n=10,
                                            binary=False)
    assert list(worst["text"]) == ["b", "a", "d"] and list(worst["predicted"]) == [1, 0, 2]


def trial(number: int, config: dict, accuracy: float, state: str = "COMPLETE") -> dict:
    return {"number": number, "config": config, "val_accuracy": accuracy, "val_loss": 1 - accuracy, "state": state}


def tune(trials: list[dict]) -> dict:
    best = max((t for t in trials if t["state"] == "COMPLETE"), key=lambda t: t["val_accuracy"])
    return {"strategy": "grid", "trials": trials,
            "best": {"config": best["config"], "val_accuracy": best["val_accuracy"]}}


# an OFAT search in the order it ran: learning rate 2e-3 before 1e-3, sgd last, one trial pruned
LSTM = tune([trial(0, {"optimizer": "rmsprop", "batch_size": 64, "learning_rate": 0.002}, 0.85),
             trial(1, {"optimizer": "adam", "batch_size": 64, "learning_rate": 0.002}, 0.87),
             trial(2, {"optimizer": "sgd", "batch_size": 64, "learning_rate": 0.002}, 0.70, "PRUNED"),
             trial(3, {"optimizer": "adam", "batch_size": 128, "learning_rate": 0.002}, 0.86),
             trial(4, {"optimizer": "adam", "batch_size": 64, "learning_rate": 0.001}, 0.88)])
TFIDF = tune([trial(0, {"C": 16.0, "ngram_max": 2}, 0.89), trial(1, {"C": 1.0, "ngram_max": 2}, 0.88),
              trial(2, {"C": 4.0, "ngram_max": 2}, 0.90)])


def ticks(ax) -> list[str]:
    return [label.get_text() for label in ax.get_xticklabels()]


def by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}


def test_tuning_values_are_in_order_not_in_the_order_trials_ran():
    axes = by_title(figures.plot_tuning({"lstm": LSTM, "tfidf_logreg": TFIDF}))
    assert ticks(axes["lstm: learning_rate"]) == ["0.001", "0.002"]
    assert ticks(axes["lstm: batch_size"]) == ["64", "128"]
    assert ticks(axes["lstm: optimizer"]) == ["adam", "rmsprop", "sgd"]
    assert ticks(axes["tfidf_logreg: C"]) == ["1", "4", "16"]
    assert [tick for _, tick in figures.tuning_axis(
        [{"config": {"lr": v}} for v in (1e-4, 5e-5, 3e-5, 2.5e-5)], "lr")] == ["2.5e-5", "3e-5", "5e-5", "1e-4"]


def test_tuning_is_a_grid_one_row_per_model_one_column_per_hyperparameter():
    fig = figures.plot_tuning({"lstm": LSTM, "tfidf_logreg": TFIDF})
    assert fig.axes[0].get_gridspec().get_geometry() == (2, 3)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [
        "lstm: optimizer", "lstm: batch_size", "lstm: learning_rate", "tfidf_logreg: C", "tfidf_logreg: ngram_max"]
    assert fig.get_figwidth() < 12  # not one strip of panels side by side


def test_tuning_stars_the_chosen_config_and_keeps_pruned_trials():
    fig = figures.plot_tuning({"lstm": LSTM, "tfidf_logreg": TFIDF})
    axes = by_title(fig)
    # chosen: adam, batch 64, learning rate 0.001 (0.88); C=4 with bigrams (0.90)
    expected = {"lstm: optimizer": ("adam", 0.88), "lstm: batch_size": ("64", 0.88),
                "lstm: learning_rate": ("0.001", 0.88), "tfidf_logreg: C": ("4", 0.90),
                "tfidf_logreg: ngram_max": ("2", 0.90)}
    assert set(axes) == set(expected)
    for title, ax in axes.items():
        value, accuracy = expected[title]
        chosen = [c.get_offsets() for c in ax.collections if c.get_label() == "chosen config (best completed trial)"]
        assert len(chosen) == 1 and len(chosen[0]) == 1, title
        x, y = chosen[0][0]
        assert abs(x - ticks(ax).index(value)) < 0.25 and y == accuracy, title
        assert [label.get_text() for label in ax.get_xticklabels() if label.get_fontweight() == "bold"] == [value]
    pruned = axes["lstm: optimizer"].collections
    assert [list(c.get_offsets()[0]) for c in pruned if c.get_label().startswith("pruned")] == [[2.0, 0.70]]
    assert "chosen config (best completed trial)" in [t.get_text() for t in fig.legends[0].get_texts()]


def history(epochs: int) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(1, epochs + 1), "accuracy": np.linspace(0.7, 0.9, epochs),
                         "loss": np.linspace(0.6, 0.3, epochs), "val_accuracy": np.linspace(0.7, 0.85, epochs),
                         "val_loss": np.linspace(0.6, 0.4, epochs)})


def test_a_single_epoch_family_gets_a_note_not_a_stretched_axis():
    fig = figures.plot_histories({"lstm": history(3), "tfidf_logreg": history(1)}, {"lstm": 2, "tfidf_logreg": 1})
    assert [ax.get_title() for ax in fig.axes] == ["lstm: accuracy", "lstm: loss"]
    notes = " ".join(text.get_text() for text in fig.texts)
    assert "tfidf_logreg: one epoch" in notes and "validation accuracy 0.7000" in notes
    # the saved model's epoch is marked in every panel
    assert all(any(list(line.get_xdata()) == [2, 2] for line in ax.get_lines()) for ax in fig.axes)

    only = figures.plot_histories({"tfidf_logreg": history(1)})
    assert not only.axes and "tfidf_logreg: one epoch" in only.texts[-1].get_text()


def test_roc_legend_gives_each_models_auc():
    frame = pd.DataFrame({"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.8, 1.0]})
    fig = figures.plot_roc({"lstm": frame, "tfidf_logreg": frame}, {"lstm": 0.9535, "tfidf_logreg": float("nan")})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["lstm (AUC 0.9535)", "tfidf_logreg", "chance"]


def test_the_report_gives_each_example_its_probability_and_sentiment():
    row = {"model": "lstm", "config": {"optimizer": "adam"}, "val_accuracy": 0.88, "val_ci_low": 0.87,
           "val_ci_high": 0.89, "test_accuracy": 0.88, "test_accuracy_std": None, "seeds": 1, "f1": 0.88,
           "roc_auc": 0.95, "trainable_params": 1000, "train_seconds": 10.0, "texts_per_second": 100.0}
    examples = [{"text": "The movie was great!", "lstm": {"probability": 0.973, "label": "positive",
                                                          "sentiment": "positive"}}]
    worst = {"lstm": pd.DataFrame({"text": ["fine"], "label": [0], "probability": [0.9], "predicted": [1]})}
    text = markdown.markdown([row], [], 0.95, examples, worst, {"model": "lstm"}, {})
    assert "| The movie was great! | positive (0.973) |" in text
    assert "| negative | positive | 0.900 | fine |" in text
