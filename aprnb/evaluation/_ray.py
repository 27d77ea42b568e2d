"""Evaluation on a Ray cluster: the local engine, run as one Ray task per part of the users.

:func:`run` takes the task that :func:`aprnb.evaluate` has prepared
(:class:`aprnb.evaluation._engine.Ranking`) and:

* puts the model's scorer (:mod:`aprnb.evaluation._scorer`; for MF the factors ``P``
  and ``Q``) and the per-item tables of the beyond-accuracy metrics into Ray's object
  store once (each node maps them once, without a copy, for all its workers);
* cuts the evaluated users into contiguous parts (:data:`TASKS_PER_CPU` per CPU of the
  cluster); each part travels with its own rows only: its users' rows of the
  exclusion and test matrices and of the negatives (:meth:`Ranking.part`), and the
  part's user indices, with which the task takes its users' side of the scorer
  (``scorer.subset``);
* scores every part in a Ray task with the local engine (:meth:`Ranking.score`: the same
  block loop, BLAS calls and Numba kernels);
* gets back each part's per-user values and integer recommendation counts only (part
  by part, adding the counts as they come), puts the values together in user order and
  summarises them with the local code (:meth:`Ranking.finish`).

A user's values depend only on the user's own rows and on the item side, and the local results
do not depend on the blocking, so the results equal the local ones bit for bit (on
workers with the same NumPy/BLAS build and CPU kind as the driver; a BLAS that computes
a dot product in another order would change the last bits of a score). Ray is imported
here only, when ``backend="ray"`` is asked for.
"""
import functools

import numpy as np


#: Ray tasks per CPU of the cluster: enough that a slow worker does not hold up the end,
#: few enough that each task is large next to Ray's per-task cost (about a millisecond).
TASKS_PER_CPU = 4


def import_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("backend='ray' needs Ray, which is not installed: "
                          "pip install 'aprnb[ray]' (or pip install ray)") from exc
    return ray


def connect():
    """The ``ray`` module, connected: the running connection, else ``ray.init()`` (which
    joins the cluster of ``RAY_ADDRESS`` or one started on this machine with ``ray start``,
    and else starts Ray on this machine)."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init()
    return ray


def _score_part(part, scorer, users, beyond, n_threads):
    """Ray task: ``(per-user values, recommendation counts or None)`` of one part
    (``users``: its users' indices in ``scorer``)."""
    part.beyond = beyond
    return part.score(scorer.subset(users), n_threads)


@functools.lru_cache(maxsize=None)
def _remote(ray):
    return ray.remote(_score_part)


def bounds(n_users, n_parts):
    """Start and stop of each of ``n_parts`` contiguous, near-equal parts of ``n_users``."""
    n_parts = max(1, min(n_parts, n_users))
    cuts = np.arange(n_parts + 1, dtype=np.int64) * n_users // n_parts
    return list(zip(cuts[:-1].tolist(), cuts[1:].tolist()))


def run(task, scorer, n_threads, per_user=False):
    """The result of ``task.run(scorer, ...)``, computed by Ray tasks of ``n_threads`` CPUs.

    The scorer goes to Ray's object store once; each task scores its part of the users
    with ``scorer.subset`` (for MF, in the dtype the whole model was checked in)."""
    ray = connect()
    users = task.users
    cpus = int(ray.cluster_resources().get("CPU", 1))
    node_cpus = max([n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]] or [0])
    if n_threads > node_cpus:           # Ray would wait for such a node for ever
        raise ValueError(f"n_threads={n_threads} (CPUs per Ray task) exceeds the {node_cpus:g} "
                         f"CPUs of the largest Ray node; pass at most {int(node_cpus)}")
    parts = bounds(len(users), TASKS_PER_CPU * max(1, cpus // n_threads))
    scorer_ref, beyond_ref = ray.put(scorer), ray.put(task.beyond)
    remote = _remote(ray).options(num_cpus=n_threads)
    refs = [remote.remote(task.part(lo, hi), scorer_ref, users[lo:hi], beyond_ref, n_threads)
            for lo, hi in parts if hi > lo]
    outs = [np.zeros((0, task.width))]
    counts = task.beyond.new_counts() if task.beyond is not None else None
    for i in range(len(refs)):          # in user order, one part at a time: the count
        o, c = ray.get(refs[i])         # matrices of finished parts are not all held
        refs[i] = None                  # at once (Ray frees a result with its last ref)
        outs.append(o)
        if counts is not None:
            counts += c
    return task.finish(np.concatenate(outs), counts, per_user)
