"""LLVM intrinsics Numba does not expose: software prefetch, a plain sqrt, atomic OR.

Part of the compilation room (:mod:`aprnb.kernels._jit`): the only code here
that depends on the LLVM version is the prefetch name, which llvmlite mangles.

``sqrt(x)`` lowers to ``llvm.sqrt`` (IEEE-exact, like ``math.sqrt``), whereas
Numba's ``math.sqrt`` calls libm's ``sqrt``/``sqrtf``, which may set ``errno`` and
therefore blocks vectorisation of the Adagrad loops.


``prefetch(A, r, c)`` asks the CPU to start loading the cache line that holds
``A[r, c]`` (LLVM's ``llvm.prefetch``, read, high locality) and returns at once.
Unlike an ordinary load it never stalls the pipeline, so the kernels can request
the embedding rows of the triples they will update next while they compute the
current ones. It has no effect on results.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def sqrt(typingctx, x):
    """IEEE square root of a float32/float64 scalar via ``llvm.sqrt`` (vectorisable)."""
    if not isinstance(x, types.Float):
        return None
    sig = x(x)

    def codegen(context, builder, signature, args):
        lty = context.get_value_type(signature.args[0])
        fn = builder.module.declare_intrinsic("llvm.sqrt", [lty])
        return builder.call(fn, [args[0]])

    return sig, codegen


def _pointer(context, builder, aryty, arr, idx):
    """LLVM pointer to the element ``idx`` (a list of intp values) of the array ``arr``."""
    ary = context.make_array(aryty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)


@intrinsic
def prefetch(typingctx, arr, row, col):
    """Prefetch the cache line of ``arr[row, col]`` (2-D array, integer indices)."""
    if not (isinstance(arr, types.Array) and arr.ndim in (1, 2)):
        return None
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        r, c = (context.cast(builder, a, t, types.intp)
                for a, t in zip(args[1:], signature.args[1:]))
        ptr = _pointer(context, builder, signature.args[0], args[0],
                       [r, c] if signature.args[0].ndim == 2 else [builder.add(r, c)])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        # llvmlite mangles the pointer type into the name: ``llvm.prefetch.p0`` with
        # opaque pointers (LLVM >= 15), ``llvm.prefetch.p0i8`` with typed ones.
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # (address, rw = read, locality = 3 (keep in all cache levels), data cache)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def atomic_or(typingctx, arr, idx, val):
    """``arr[idx] |= val`` as one atomic read-modify-write (1-D integer array).

    The filter fill lets every thread set bits anywhere in the table: an
    ordinary ``|=`` from two threads on one word could lose one thread's bits.
    The order of the ORs does not matter, so the result is the same on any
    number of threads. Relaxed ("monotonic") ordering: nothing else is
    synchronised through the table while it is filled.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 1
            and isinstance(arr.dtype, types.Integer) and isinstance(idx, types.Integer)):
        return None
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = _pointer(context, builder, aryty, args[0], [i])
        builder.atomic_rmw("or", ptr, context.cast(builder, args[2], signature.args[2],
                                                   aryty.dtype), "monotonic")
        return context.get_dummy_value()

    return sig, codegen
