"""Optimizers, gradient clipping and learning-rate schedules.

Adam follows Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization" (Algorithm 1);
AdamW follows Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"; the
inverse-square-root warmup schedule is the one in Vaswani et al. 2017, "Attention Is All You
Need", section 5.3.

A model hands us `params` and `grads`: dicts with the same keys and shapes. We update every
parameter in place (`p -= ...`), never rebinding it, because the model's layers and any other
dict holding the parameters share the very same arrays.
"""

import math

import numpy as np


class Adam:
    """Adam with classic L2 weight decay (the decay term is added to the gradient).

    For each parameter p with gradient g, at optimizer step t = 1, 2, ...:
        g     = g + weight_decay * p               (L2; skipped when weight_decay == 0)
        m     = beta1 * m + (1 - beta1) * g        running mean of gradients
        v     = beta2 * v + (1 - beta2) * g * g    running mean of squared gradients
        m_hat = m / (1 - beta1**t)                 bias correction: m, v start at zero
        v_hat = v / (1 - beta2**t)
        p     = p - lr * m_hat / (sqrt(v_hat) + eps)

    t counts optimizer steps and is shared by all parameters; a tensor whose gradient happens
    to be zero this step still ages its m and v, so its correction must use the same t.
    `names`, if given, restricts updates to those parameters (the rest stay frozen, as the base
    weights do under LoRA); we keep no state for frozen parameters. `decay`, if given, names the
    parameters weight decay applies to (the rest are updated without it); which ones a model
    decays is minitx.build.build_optimizer's rule.
    """

    decoupled = False  # AdamW sets this: decay the weights directly instead of via the gradient

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.98, eps=1e-9, weight_decay=0.0,
                 names=None, decay=None):
        self.params = params
        self.lr = lr  # used when step() is not given a scheduled lr
        self.beta1 = beta1  # 0.9 as in Kingma & Ba: the mean gradient forgets over ~10 steps
        self.beta2 = beta2  # 0.98 as in Vaswani et al. 5.3 (Kingma & Ba use 0.999)
        self.eps = eps  # 1e-9 as in Vaswani et al. 5.3; only guards against sqrt(v_hat) == 0
        self.weight_decay = weight_decay  # 0.0: no decay unless the config asks for it
        self.names = list(params) if names is None else list(names)
        self.decay = set(self.names if decay is None else decay)
        unknown = [n for n in [*self.names, *self.decay] if n not in params]
        if unknown:
            raise ValueError(f"optimizer given unknown parameter names: {unknown}")
        self.m = {n: np.zeros_like(params[n]) for n in self.names}
        self.v = {n: np.zeros_like(params[n]) for n in self.names}
        self.t = 0

    def step(self, grads, lr=None):
        """Apply one update to every trainable parameter, in place."""
        lr = self.lr if lr is None else lr
        self.t += 1
        correction1 = 1.0 - self.beta1 ** self.t
        correction2 = 1.0 - self.beta2 ** self.t
        # m_hat / (sqrt(v_hat) + eps) = (m / c1) / (sqrt(v) / sqrt(c2) + eps)
        #                             = (sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2)),
        # so we divide no array by c1 or c2 (the rearrangement Kingma & Ba suggest at the end
        # of their section 2): two scalars instead of two passes over every parameter.
        step_size = lr * math.sqrt(correction2) / correction1
        eps_hat = self.eps * math.sqrt(correction2)
        for name in self.names:
            p, g, m, v = self.params[name], grads[name], self.m[name], self.v[name]
            decay = self.weight_decay if name in self.decay else 0.0
            if decay and not self.decoupled:
                g = g + decay * p  # a new array: the caller's gradient stays intact
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * np.square(g)
            if decay and self.decoupled:
                p *= 1.0 - lr * decay
            # p -= lr * m_hat / (sqrt(v_hat) + eps), with the corrections moved onto scalars.
            denom = np.sqrt(v)
            denom += eps_hat
            p -= step_size * m / denom

    def state_dict(self):
        """Copies of the step count and moments, as plain arrays (savable without pickle)."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for name in self.names:
            state[f"m.{name}"] = self.m[name].copy()
            state[f"v.{name}"] = self.v[name].copy()
        return state

    def load_state_dict(self, state):
        """Restore a `state_dict()` in place; the keys and shapes must match exactly."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"optimizer state does not match: missing {missing}, "
                             f"unexpected {extra}")
        for key, value in expected.items():
            if np.shape(state[key]) != value.shape:
                raise ValueError(f"optimizer state {key!r} has shape {np.shape(state[key])}, "
                                 f"expected {value.shape}")
        self.t = int(state["t"])
        for name in self.names:
            self.m[name][...] = state[f"m.{name}"]
            self.v[name][...] = state[f"v.{name}"]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as PyTorch's AdamW.

    Each step first shrinks the weights, then takes the plain Adam step (no decay term in g):
        p = p * (1 - lr * weight_decay)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)
    With L2 in Adam the decay term is divided by sqrt(v_hat), so weights with large gradients
    are barely decayed; decoupling makes every weight decay at the same rate.
    """

    decoupled = True


# The optimizers train.optimizer may name; the config reads its choices from here.
OPTIMIZERS = {"adam": Adam, "adamw": AdamW}


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so their global L2 norm is at most max_norm.

    norm = sqrt(sum over every array g of sum(g**2))
    if max_norm > 0 and norm > max_norm:  g = g * max_norm / (norm + 1e-6)  for every g
    Returns the norm before clipping (worth logging: spikes warn of instability).
    max_norm <= 0 disables clipping.
    """
    # One dot product g . g per tensor (BLAS keeps many partial sums, so a float32 sum of
    # squares loses very little), then the tensors' totals added as Python (float64) floats.
    norm = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values()))
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-6)  # the 1e-6 keeps the clipped norm just under max_norm
        for g in grads.values():
            g *= scale
    return norm


def warmup_factor(step, warmup):
    """w(step) = min(1, step / warmup), the linear warmup; 1 when warmup == 0."""
    return min(1.0, step / warmup) if warmup > 0 else 1.0


def constant(step, lr, warmup, steps):
    """lr * w(step): warm up, then hold."""
    return lr * warmup_factor(step, warmup)


def cosine(step, lr, warmup, steps):
    """Warm up, then lr * 0.5 * (1 + cos(pi * (step - warmup) / (steps - warmup))), 0 at `steps`."""
    if step <= warmup:
        return lr * warmup_factor(step, warmup)
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def inverse_sqrt(step, lr, warmup, steps):
    """lr * min(step / warmup, sqrt(warmup / step)): the paper's warmup, then 1/sqrt(step) decay."""
    # With no warmup we peak at step 1 and decay as 1/sqrt(step) from there.
    w = max(warmup, 1)
    return lr * min(step / w, math.sqrt(w / step))


# Every schedule train.schedule may name, each a function (step, lr, warmup, steps) -> learning
# rate. The config accepts exactly these names: minitx.config reads this dict.
SCHEDULES = {"inverse_sqrt": inverse_sqrt, "cosine": cosine, "constant": constant}


def make_schedule(name, lr, warmup, steps, d_model=None):
    """Return a function mapping the step (counted from 1) to a learning rate: the schedule
    SCHEDULES[name] with lr, warmup and steps fixed.

    The paper's formula, d_model**-0.5 * min(step**-0.5, step * warmup**-1.5), is inverse_sqrt
    with lr = (d_model * warmup)**-0.5, its value at the peak; pass lr=None and d_model to get it.
    """
    if lr is None:
        if name != "inverse_sqrt" or d_model is None:
            raise ValueError("lr=None is only allowed for 'inverse_sqrt' with d_model given")
        lr = (d_model * max(warmup, 1)) ** -0.5
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    schedule = SCHEDULES[name]
    return lambda step: schedule(step, lr, warmup, steps)
