"""minitx: a from-scratch encoder-decoder transformer in pure NumPy, built to be read.

Every layer has a forward pass and a hand-written backward pass, and every backward pass is
checked against finite differences (`minitx.gradcheck`). There is no autograd anywhere.

Shape letters, used in every docstring and every shape comment:
    B  batch size                 S  source length        T  target length
    D  model width (d_model)      H  number of heads      K  head width, D = H * K
    F  feed-forward width         V  vocabulary size
    L  S or T, in a layer that serves both (a Linear, the feed-forward block, layer norm)

Every layer keeps one contract: `forward(...)` returns its output and stores one cache;
`backward(dout)` reads that cache, returns the gradient of its input(s) and adds the parameter
gradients into `grads`, a dict with exactly the keys of `params`.
"""

__version__ = "0.1.0"
