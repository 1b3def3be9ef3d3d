import numpy as np
import pandas as pd

from imdbclf import reporting


def test_most_confidently_wrong_orders_by_confidence():
    frame = pd.DataFrame({"text": list("abcd"), "label": [1, 0, 1, 0]})
    proba = np.array([0.1, 0.95, 0.8, 0.4])  # a and b are wrong; b more confidently
    worst = reporting.most_confidently_wrong(frame, proba, n=10)
    assert list(worst["text"]) == ["b", "a"]
