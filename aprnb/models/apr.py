"""AMF: matrix factorisation trained with Adversarial Personalized Ranking."""
import numpy as np

from .._validation import check_choice, check_float, check_positive_int
from ..kernels import MODE_APR, MODE_APR_RANDOM
from ._training import Phase
from .bpr import BPR


class APR(BPR):
    """Adversarial Personalized Ranking on MF (He et al., SIGIR 2018), "AMF".

    Each step perturbs ``p_u, q_i, q_j`` by the fast-gradient adversary (the BPR
    gradient, L2-normalised per row, times ``eps``; closed form per triple) and
    descends on ``BPR(x) + reg_adv * BPR(x_adv)`` with the perturbation held
    constant. See ``docs/derivations.md``.

    Parameters
    ----------
    eps : float, default 0.5
        Per-row L2 norm of the perturbation.
    reg_adv : float, default 1.0
        Weight of the adversarial term (lambda in the paper).
    noise : {"adversarial", "random"}
        ``"random"`` replaces the adversary by Gaussian rows of the same norm (the
        paper's ablation).
    bpr_epochs : int, default 0
        One-call schedule like the official ``adv_epoch``: train this many plain
        BPR epochs first, then ``epochs`` APR epochs.
    reset_optimizer : bool, default True
        Restart the Adagrad accumulators when APR starts (at ``bpr_epochs`` and
        when warm-starting with ``fit(init=model)``), as the official code does.
        With False the accumulators of ``init`` (or of the BPR phase) carry over.
    **BPR parameters
        factors, learning_rate, reg, epochs, optimizer, init_std, n_threads,
        random_state, dtype, show_progress, initial_accumulator, batch_size, n_slices.

    Notes
    -----
    ``fit(train, init=bpr_model)`` continues from a converged MF-BPR, as the
    paper does; ``init`` is copied, never modified.
    """

    def __init__(self, factors=64, learning_rate=0.05, reg=0.0, epochs=100, optimizer="adagrad",
                 init_std=0.01, n_threads=None, random_state=None, dtype=np.float32,
                 show_progress=True, initial_accumulator=0.1, batch_size=1, eps=0.5,
                 reg_adv=1.0, noise="adversarial", bpr_epochs=0, reset_optimizer=True,
                 n_slices=None):
        super().__init__(factors=factors, learning_rate=learning_rate, reg=reg, epochs=epochs,
                         optimizer=optimizer, init_std=init_std, n_threads=n_threads,
                         random_state=random_state, dtype=dtype, show_progress=show_progress,
                         initial_accumulator=initial_accumulator, batch_size=batch_size,
                         reset_optimizer=reset_optimizer, n_slices=n_slices)
        self.eps = eps
        self.reg_adv = reg_adv
        self.noise = noise
        self.bpr_epochs = bpr_epochs

    def _validate_params(self):
        super()._validate_params()
        check_float(self.eps, "eps", 0.0, low_inclusive=False)
        check_float(self.reg_adv, "reg_adv", 0.0)
        check_choice(self.noise, "noise", ("adversarial", "random"))
        check_positive_int(self.bpr_epochs, "bpr_epochs", 0)

    def _phases(self):
        """``bpr_epochs`` of BPR, then ``epochs`` of APR (Adagrad restarted between)."""
        mode = MODE_APR if self.noise == "adversarial" else MODE_APR_RANDOM
        apr = Phase(self.epochs, mode, self.eps, self.reg_adv,
                    reset=self.bpr_epochs > 0 and self.reset_optimizer)
        return [Phase(self.bpr_epochs), apr]
