"""How many threads the BLAS library behind NumPy's matrix products uses.

minitx sets the count from inside the process (train.threads, or --threads), so that a command
behaves the same whatever OPENBLAS_NUM_THREADS said when Python started; the comment on
train.threads in minitx.config says why the default is one.
"""

import numpy  # noqa: F401  (loads the BLAS library, so that threadpoolctl finds it)
from threadpoolctl import threadpool_info, threadpool_limits


def use_blas_threads(n):
    """Let the BLAS library NumPy calls (OpenBLAS, MKL, ...) use n threads from now on, whatever
    OPENBLAS_NUM_THREADS said when the process started. Returns blas_threads() afterwards."""
    threadpool_limits(limits=n, user_api="blas")
    return blas_threads()


def blas_threads():
    """How many threads the loaded BLAS library reports using (threadpoolctl asks it), or
    None if threadpoolctl finds none."""
    counts = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts) if counts else None


def blas_kernels():
    """The kernels the BLAS library chose for this CPU, as threadpoolctl reports them
    ("SkylakeX", "Haswell", ...; OpenBLAS lets OPENBLAS_CORETYPE choose others), or None.
    They matter beyond speed: other kernels add a product's terms in another order, so the
    same config and seed train to other weights on them."""
    names = [lib.get("architecture") for lib in threadpool_info() if lib["user_api"] == "blas"]
    return next((n for n in names if n), None)
