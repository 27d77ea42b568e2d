"""A seeded synthetic implicit-feedback data set with planted structure.

Users belong to latent groups; each group prefers its own slice of the catalogue;
item popularity follows a Zipf law. A model that learns anything beats item
popularity on it, and a model that learns nothing does not, which makes it a
useful default for the demo and for tests.
"""
import numpy as np

from .._validation import check_float, check_positive_int, check_random_state
from .dataset import _binary_csr


def make_synthetic(n_users=2000, n_items=1000, n_groups=10, mean_degree=25,
                   group_affinity=0.8, popularity_exponent=0.8, random_state=0):
    """Generate a binary CSR interaction matrix of shape ``(n_users, n_items)``.

    Parameters
    ----------
    n_users, n_items, n_groups : int
    mean_degree : int
        Average interactions per user (degrees are geometric around it, at least
        ``min(3, n_items // 2)`` and at most ``n_items // 2``).
    group_affinity : float in [0, 1]
        Share of a user's interactions drawn from their group's items; the rest
        comes from the whole catalogue by popularity.
    popularity_exponent : float >= 0
        Zipf exponent of item popularity (0 = uniform).
    random_state : None, int or Generator
    """
    n_users = check_positive_int(n_users, "n_users")
    n_items = check_positive_int(n_items, "n_items", 2)
    n_groups = check_positive_int(n_groups, "n_groups")
    if n_groups > n_items:
        raise ValueError(f"n_groups ({n_groups}) must not exceed n_items ({n_items})")
    mean_degree = check_positive_int(mean_degree, "mean_degree")
    group_affinity = check_float(group_affinity, "group_affinity", 0.0, 1.0)
    popularity_exponent = check_float(popularity_exponent, "popularity_exponent", 0.0)
    rng = check_random_state(random_state)

    pop = 1.0 / np.arange(1, n_items + 1) ** popularity_exponent
    pop = pop[rng.permutation(n_items)]
    item_group = rng.integers(0, n_groups, size=n_items)
    user_group = rng.integers(0, n_groups, size=n_users)
    global_p = pop / pop.sum()
    group_p = np.zeros((n_groups, n_items))
    for g in range(n_groups):
        w = np.where(item_group == g, pop, 0.0)
        group_p[g] = w / w.sum() if w.sum() > 0 else global_p
    cap = max(1, n_items // 2)
    degree = np.minimum(3 + rng.geometric(1.0 / max(1, mean_degree - 2), size=n_users) - 1, cap)
    users, items = [], []
    for u in range(n_users):
        # A mixture of the user's group and the whole catalogue, drawn without
        # replacement so that the user gets exactly degree[u] distinct items.
        p = group_affinity * group_p[user_group[u]] + (1.0 - group_affinity) * global_p
        picks = rng.choice(n_items, size=int(degree[u]), replace=False, p=p / p.sum())
        users.append(np.full(len(picks), u))
        items.append(picks)
    return _binary_csr(np.concatenate(users), np.concatenate(items), (n_users, n_items))
