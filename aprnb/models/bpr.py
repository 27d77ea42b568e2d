"""MF-BPR: matrix factorisation trained with Bayesian Personalized Ranking."""
import numpy as np

from ._factor import FactorModel


class BPR(FactorModel):
    """Matrix factorisation with the BPR loss (Rendle et al., UAI 2009).

    Scores are ``p_u . q_i`` (no biases, as in the APR paper). Each epoch visits
    every training interaction once in a fresh random order and samples one
    uniform negative per positive from the items the user has not interacted
    with.

    Parameters
    ----------
    factors : int, default 64
        Embedding width.
    learning_rate : float, default 0.05
    reg : float, default 0.0
        L2 coefficient; the update is ``theta -= lr * (dl/dtheta + reg * theta)``.
    epochs : int, default 100
    optimizer : {"adagrad", "sgd"}, default "adagrad"
        Per-element Adagrad, per triple (the APR paper's optimizer, and the
        default because under constant-rate SGD continued training favours
        MF-BPR: AMF does not beat it there, so SGD defaults would show APR
        hurting), or plain constant-rate SGD.
    init_std : float, default 0.01
        Standard deviation of the Gaussian initialisation.
    n_threads : int or None
        Threads; None uses all of Numba's threads. More than that run on all of
        them (the work keeps its ``n_slices`` slices). ``1`` runs the slices one
        after another, which with a ``random_state`` is bitwise reproducible.
        Several threads update the factors without locks (Hogwild): fast,
        statistically equivalent, but not bitwise reproducible.
    n_slices : int or None
        Slices of each epoch's training pairs, each with its own RNG streams
        (None: one per thread, ``n_threads``). With a seed, results depend on
        ``n_slices``, not on the threads that run them (apart from Hogwild's
        races): ``n_threads=1, n_slices=4`` replays a 4-thread run without races.
    random_state : None, int or numpy.random.Generator
        Seeds the initialisation, the epoch order and the per-thread RNG streams.
    dtype : numpy.float32 or numpy.float64, default float32
    show_progress : bool, default True
        tqdm progress bar over epochs.
    initial_accumulator : float, default 0.1
        Starting value of the Adagrad accumulators (TensorFlow 1's default).
    batch_size : int, default 1
        1 = per-triple updates (Hogwild-parallel). Larger values run the
        mini-batch kernel with summed per-row gradients, as autodiff code does;
        on several threads each thread runs the batches of its slice of the
        pairs (Hogwild over mini-batches; one thread is bitwise reproducible).
    reset_optimizer : bool, default False
        When warm-starting from a fitted model with Adagrad state
        (``fit(init=model)``), False continues with its accumulators (a true
        continuation of training); True restarts them at ``initial_accumulator``.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
    history_ : list of dict
        Per epoch: ``epoch``, mean ``loss`` per triple, ``seconds``, and the
        metric of a :class:`~aprnb.models.callbacks.Validation` callback.
    optimizer_state_ : (ndarray, ndarray) or None
        Adagrad accumulators after fitting.
    """

    def __init__(self, factors=64, learning_rate=0.05, reg=0.0, epochs=100, optimizer="adagrad",
                 init_std=0.01, n_threads=None, random_state=None, dtype=np.float32,
                 show_progress=True, initial_accumulator=0.1, batch_size=1,
                 reset_optimizer=False, n_slices=None):
        self.factors = factors
        self.learning_rate = learning_rate
        self.reg = reg
        self.epochs = epochs
        self.optimizer = optimizer
        self.init_std = init_std
        self.n_threads = n_threads
        self.random_state = random_state
        self.dtype = dtype
        self.show_progress = show_progress
        self.initial_accumulator = initial_accumulator
        self.batch_size = batch_size
        self.reset_optimizer = reset_optimizer
        self.n_slices = n_slices
