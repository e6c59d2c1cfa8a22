"""The optimizers and their learning-rate schedule, built by name (make_optimizer), and the project's own
RectifiedAdam (RAdam, Liu et al. 2019, https://arxiv.org/abs/1908.03265) on the Keras 2 optimizer base class.
tensorflow-addons, which used to provide it, is at end of life: it has no wheel for Python 3.12+ and does not import
on TensorFlow 2.16+. This is the same maths as `tfa.optimizers.RectifiedAdam` without amsgrad and warmup, and
tests/test_optimizers.py checks it step for step against tfa where tfa is installed."""

from typing import Optional, Union

from segtf.errors import UserError

import tensorflow as tf

LearningRate = Union[float, tf.keras.optimizers.schedules.LearningRateSchedule]


@tf.keras.utils.register_keras_serializable(package="segmentation")
class RectifiedAdam(tf.keras.optimizers.Optimizer):
    """Adam whose adaptive step is scaled by the variance rectification r_t, and which takes plain momentum (SGD with
    bias-corrected first moment) while the variance estimate is too young: sma_t < sma_threshold, the first ~5 steps.
    Weight decay is decoupled, by the base class: each step var -= lr * weight_decay * var, as in tfa."""

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        sma_threshold: float = 5.0,
        weight_decay: Optional[float] = 0.0,
        name: str = "RectifiedAdam",
        **kwargs,
    ):
        super().__init__(name=name, weight_decay=weight_decay, **kwargs)
        self._learning_rate = self._build_learning_rate(learning_rate)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.sma_threshold = sma_threshold

    def build(self, var_list: list) -> None:
        """The first and second moments, one each per model variable."""
        super().build(var_list)
        if getattr(self, "_built", False):
            return
        self._built = True
        self._momentums = [self.add_variable_from_reference(var, "m") for var in var_list]
        self._velocities = [self.add_variable_from_reference(var, "v") for var in var_list]

    def update_step(self, gradient: tf.Tensor, variable: tf.Variable) -> None:
        """One RAdam step on one variable."""
        dtype = variable.dtype
        # Densified: a sparse gradient then moves every row by its momentum, where tfa moved only the rows looked up;
        # the segmentation models have no embeddings, so no sparse gradients reach here.
        gradient = tf.convert_to_tensor(gradient)
        lr = tf.cast(self.learning_rate, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        # The order of operations below is tfa's, so that float32 rounding agrees with it too.
        recip_one_minus_beta_1_power = 1.0 / (1.0 - tf.pow(beta_1, step))
        beta_2_power = tf.pow(beta_2, step)
        recip_one_minus_beta_2_power = 1.0 / (1.0 - beta_2_power)
        sma_inf = 2.0 / (1.0 - beta_2) - 1.0
        sma_t = sma_inf - 2.0 * step * beta_2_power * recip_one_minus_beta_2_power
        # Not a number while 2 < sma_t < 4 (steps 2 to 4), but the branch below does not take it then.
        r_t = tf.sqrt((sma_t - 4.0) / (sma_inf - 4.0) * (sma_t - 2.0) / (sma_inf - 2.0) * sma_inf / sma_t)

        index = self._index_dict[self._var_key(variable)]
        m = self._momentums[index]
        v = self._velocities[index]
        m.assign(beta_1 * m + (1.0 - beta_1) * gradient)
        v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
        m_corrected = m * recip_one_minus_beta_1_power
        # Unlike keras' Adam, epsilon is added after the bias correction of v (tfa's place).
        v_corrected = tf.sqrt(v * recip_one_minus_beta_2_power)
        rectified = r_t * m_corrected / (v_corrected + tf.cast(self.epsilon, dtype))
        variable.assign_sub(lr * tf.where(sma_t >= tf.cast(self.sma_threshold, dtype), rectified, m_corrected))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "learning_rate": self._serialize_hyperparameter(self._learning_rate),
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "sma_threshold": self.sma_threshold,
            }
        )
        return config


def learning_rate_schedule(name: str, learning_rate: float, total_steps: int) -> LearningRate:
    """cosine: linear warm-up over the first 5% of total_steps, then a cosine decay to 0 at the last step.
    constant and plateau: a fixed rate (ReduceLROnPlateau in train.py lowers the plateau one)."""
    if name != "cosine":
        return learning_rate
    warmup = max(1, round(0.05 * total_steps))
    return tf.keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total_steps - warmup), warmup_target=learning_rate, warmup_steps=warmup
    )


def make_optimizer(
    name: str, learning_rate: LearningRate, weight_decay: float, ema: float = 0.0
) -> tf.keras.optimizers.Optimizer:
    """The one place that builds the optimizer. Weight decay is decoupled from the gradient in each: every step
    shrinks every weight by learning_rate * weight_decay. ema above 0: the optimizer also keeps the exponential
    moving average of the weights with that decay (ema.py)."""
    common = {"weight_decay": weight_decay, "use_ema": ema > 0, "ema_momentum": ema}
    if name == "radam":  # the project's own: tensorflow-addons' does not install on Python 3.12 and later
        return RectifiedAdam(learning_rate, **common)
    if name == "sgd":
        return tf.keras.optimizers.SGD(learning_rate, momentum=0.99, nesterov=True, **common)
    if name == "adam":
        return tf.keras.optimizers.Adam(learning_rate, **common)
    if name == "adamw":
        return tf.keras.optimizers.AdamW(learning_rate, **common)
    raise UserError(f"--optimizer {name}: expected radam, adam, adamw or sgd")
