"""VAT: vulnerability-aware adversarial training of MF (Zhang et al., RecSys 2024)."""
import numpy as np

from .._validation import check_float
from ..kernels import MODE_VAT
from ._training import Phase
from .apr import APR


class VAT(APR):
    """Vulnerability-Aware Adversarial Training on MF (Zhang et al., RecSys 2024).

    APR whose perturbation radius is set per user. Once per epoch, at the
    parameters of the epoch's start, every user gets the factor

        c_u = vul_lambda * sigmoid(mean_v L_v / (L_u + 1e-9) - 1)

    from their mean clean BPR loss ``L_u`` (one fresh uniform negative per
    training pair); the triple ``(u, i, j)`` is then perturbed by APR's closed
    form with radius ``eps * c_u`` on ``p_u``, ``q_i`` and ``q_j``. Users the
    model fits well (small loss: the "vulnerable" ones) get the larger radius.
    A user of average loss gets ``vul_lambda / 2`` (1 by default, i.e. APR's
    ``eps``). See ``docs/derivations.md`` section 10, which also lists where
    this departs from the official code (per-epoch instead of per-batch
    estimate, Adagrad and per-triple updates instead of AdamW on mini-batches).

    Parameters
    ----------
    eps : float, default 0.5
        Base radius (rho in the paper). The official code uses 0.5 for MF on
        Yelp2018, 0.6 on Gowalla and 0.4 on MIND (argparse default 0.3).
    reg_adv : float, default 1.0
        Weight of the adversarial term.
    vul_lambda : float, default 2.0
        Upper bound of the per-user factor ``c_u`` (``user_lmb`` in the official
        code, default 2).
    bpr_epochs : int, default 0
        Plain BPR epochs before the VAT epochs (the official code starts the
        adversary after 5).
    reset_optimizer : bool, default True
        As :class:`APR`.
    **BPR parameters
        factors, learning_rate, reg, epochs, optimizer, init_std, n_threads,
        random_state, dtype, show_progress, initial_accumulator, n_slices.
        ``batch_size`` must be 1: VAT trains per triple only.

    Notes
    -----
    ``fit(train, init=bpr_model)`` continues from a fitted MF-BPR, as for APR.
    With one thread and a seed a fit is bitwise reproducible; the per-user
    factors draw their negatives from a stream of their own, so a VAT fit whose
    factors all equal 1 is exactly the APR fit of the same seed.
    """

    #: APR's ablation switch, fixed: VAT has no random-noise variant (not a parameter)
    noise = "adversarial"

    def __init__(self, factors=64, learning_rate=0.05, reg=0.0, epochs=100, optimizer="adagrad",
                 init_std=0.01, n_threads=None, random_state=None, dtype=np.float32,
                 show_progress=True, initial_accumulator=0.1, batch_size=1, eps=0.5,
                 reg_adv=1.0, vul_lambda=2.0, bpr_epochs=0, reset_optimizer=True,
                 n_slices=None):
        super().__init__(factors=factors, learning_rate=learning_rate, reg=reg, epochs=epochs,
                         optimizer=optimizer, init_std=init_std, n_threads=n_threads,
                         random_state=random_state, dtype=dtype, show_progress=show_progress,
                         initial_accumulator=initial_accumulator, batch_size=batch_size,
                         eps=eps, reg_adv=reg_adv, bpr_epochs=bpr_epochs,
                         reset_optimizer=reset_optimizer, n_slices=n_slices)
        del self.noise                  # set by APR.__init__; the class attribute stays
        self.vul_lambda = vul_lambda

    def _validate_params(self):
        super()._validate_params()
        check_float(self.vul_lambda, "vul_lambda", 0.0, low_inclusive=False)
        if self.batch_size != 1:
            raise ValueError(f"VAT trains per triple only: got batch_size={self.batch_size}, "
                             f"use batch_size=1")

    def _phases(self):
        """``bpr_epochs`` of BPR, then ``epochs`` of VAT (Adagrad restarted between)."""
        vat = Phase(self.epochs, MODE_VAT, self.eps, self.reg_adv,
                    reset=self.bpr_epochs > 0 and self.reset_optimizer,
                    vul_lambda=self.vul_lambda)
        return [Phase(self.bpr_epochs), vat]
