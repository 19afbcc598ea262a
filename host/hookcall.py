"""Calling a hook's implementations directly: what pluggy does for a call, minus its per-call
bookkeeping, resolved once (the engine calls a strategy's hooks once per event; fills.csv asks
``describe_order_ref`` once per lot)."""

from __future__ import annotations


def direct_caller(caller):
    """Call a hook's implementations as pluggy would (last registered first, tryfirst/trylast
    honoured, each given the arguments it names), minus pluggy's per-call bookkeeping, which
    would otherwise be a sizeable part of a replay's time. Hook wrappers keep pluggy's path."""
    impls = caller.get_hookimpls()
    if any(i.hookwrapper or i.wrapper for i in impls):
        return caller
    funcs = [(i.function, i.argnames) for i in reversed(impls)]
    spec = caller.spec
    if len(funcs) == 1:
        (func, names), = funcs
        if spec is not None and set(names) == set(spec.argnames):
            return func  # it takes every argument the hook is called with, by the same names
        return lambda **kw: func(*[kw[n] for n in names])

    def call(**kw) -> None:
        for func, names in funcs:
            func(*[kw[n] for n in names])

    return call


def first_result(caller, argname: str):
    """A ``firstresult`` hook of one argument as a plain function of that argument: the first
    answer that is not None, implementations called in pluggy's order, minus pluggy's per-call
    bookkeeping (fills.csv asks ``describe_order_ref`` once per lot). Wrappers, or an
    implementation taking other arguments, keep pluggy's path."""
    impls = caller.get_hookimpls()
    if any(i.hookwrapper or i.wrapper or tuple(i.argnames) != (argname,) for i in impls):
        return lambda value: caller(**{argname: value})
    funcs = [i.function for i in reversed(impls)]
    if len(funcs) == 1:
        return funcs[0]

    def call(value):
        for func in funcs:
            result = func(value)
            if result is not None:
                return result
        return None

    return call
