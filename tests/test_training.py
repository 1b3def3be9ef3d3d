import numpy as np
import pytest
import tensorflow as tf

from imdbclf.families.keras.optimizers import WarmupLinearDecay, learning_rate, make_optimizer
from imdbclf.settings.keras import OptimizerSettings


def test_warmup_then_linear_decay_follows_the_formula():
    schedule = WarmupLinearDecay(peak=1e-3, total_steps=100, warmup_steps=10)
    for step in (0, 5, 10, 55, 100, 120):
        expected = 1e-3 * step / 10 if step < 10 else 1e-3 * max(0.0, (100 - step) / 90)
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)


def test_schedule_uses_ten_percent_warmup():
    lr = learning_rate(2e-5, 1000, OptimizerSettings(schedule="linear_warmup_decay", warmup_fraction=0.1))
    assert lr.warmup_steps == 100 and lr.total_steps == 1000
    assert learning_rate(2e-5, 1000, OptimizerSettings()) == 2e-5


@pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "adamw"])
def test_every_optimizer_of_the_grid_descends_at_its_learning_rate(name):
    """One step on f(w) = w²/2 (gradient w) moves w down by about the learning rate (the first step of
    the adaptive ones is ~lr whatever the gradient's size; SGD's is lr·w)."""
    optimizer = make_optimizer(name, 0.1, 10, OptimizerSettings(momentum=0.0, weight_decay=0.0))
    weight = tf.Variable([1.0])
    optimizer.apply_gradients([(tf.constant([1.0]), weight)])
    assert 0.0 < 1.0 - float(weight.numpy()[0]) <= 0.32 and float(optimizer.learning_rate) == pytest.approx(0.1)


def test_adamw_skips_layer_norm_and_bias():
    settings = OptimizerSettings(weight_decay=0.5, epsilon=1e-6)
    optimizer = make_optimizer("adamw", 0.1, 10, settings)
    kernel = tf.Variable(np.ones((2, 2), "float32"), name="dense/kernel")
    bias = tf.Variable(np.ones(2, "float32"), name="dense/bias")
    norm = tf.Variable(np.ones(2, "float32"), name="LayerNorm/gamma")
    zeros = [np.zeros((2, 2), "float32"), np.zeros(2, "float32"), np.zeros(2, "float32")]
    optimizer.apply_gradients(zip(zeros, [kernel, bias, norm]))
    # With zero gradients only weight decay moves a weight: lr * wd * w = 0.05.
    np.testing.assert_allclose(kernel.numpy(), 0.95, rtol=1e-5)
    np.testing.assert_allclose(bias.numpy(), 1.0)
    np.testing.assert_allclose(norm.numpy(), 1.0)
    assert optimizer.epsilon == pytest.approx(1e-6)
