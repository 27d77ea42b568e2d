import sys, time, numpy as np
sys.path.insert(0, "/work/main")
from aprnb.kernels import epoch_parallel, epoch_serial
sys.path.insert(0,"/tmp/s16/prof"); import kb_hack as kb
from aprnb.kernels._rng import seed_states
from aprnb.kernels.sampling import build_filter
from aprnb.models._training import positives
from bench.common import load_gowalla
X = load_gowalla().train.tocsr(); X.sort_indices()
users, items = positives(X)
filt = build_filter(X.indptr, X.indices, X.shape[1])
rng = np.random.default_rng(0); d = 64
P = (0.1*rng.standard_normal((X.shape[0], d))).astype(np.float32)
Q = (0.1*rng.standard_normal((X.shape[1], d))).astype(np.float32)
GP = np.full_like(P, 0.1); GQ = np.full_like(Q, 0.1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
states = seed_states(rng, n)
mode = int(sys.argv[2]) if len(sys.argv) > 2 else 1
res = {"triple": [], "batch": []}
tri = epoch_parallel if n > 1 else epoch_serial
bat = kb.batch_parallel if n > 1 else kb.batch_serial
for r in range(11):
    for name, fn, kw in (("batch", bat, {"batch_size": 512})):
        w0 = time.perf_counter()
        fn(P, Q, GP, GQ, filt, X.indptr, X.indices, users, items, states, 0.05, 0.0,
           np.float32(0.5), np.float32(1.0), mode, True, n, shuffle=True, **kw)
        if r: res[name].append(time.perf_counter() - w0)
for k, v in res.items(): print(n, k, "median %.3f min %.3f" % (np.median(v), min(v)))
print("ratio of medians %.2f, of mins %.2f" % (np.median(res["batch"])/np.median(res["triple"]), min(res["batch"])/min(res["triple"])))
