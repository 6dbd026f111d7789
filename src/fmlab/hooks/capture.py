"""Reading and replacing activations at canonical sites, with hooks that always go away.

    with hooked(model, read=["blocks.3.resid_post"]) as acts:
        model(**batch)
    acts["blocks.3.resid_post"]            # (B, T, D), detached

    acts = capture(model, batch, ["embed", "blocks.0.attn_out"])       # one call
    out = patch(model, clean, {"blocks.5.resid_post": corrupt_acts}, positions=[-1])

:func:`hooked` registers PyTorch forward hooks (outputs) and forward pre-hooks (inputs)
on the modules the model's family maps each site to (:mod:`fmlab.hooks.sites`), and
removes every one of them when the block exits — normally or by an exception — and
restores the attention implementation it may have switched to ``eager`` to expose
attention patterns. Activation patching (Vig et al. 2020; Meng et al. 2022, "Locating
and Editing Factual Associations in GPT", causal tracing) replaces a site's tensor, at
all or at selected positions, with one recorded from another input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from fmlab.errors import UserInputError
from fmlab.hooks.sites import Site, resolve_sites, unknown_site_error

Replacement = Tensor | Callable[[Tensor], Tensor]
Positions = int | Sequence[int] | None


def available_sites(model: nn.Module) -> list[str]:
    """Every canonical site name this model has, in forward order per block."""
    return list(resolve_sites(model))


def run_model(model: nn.Module, inputs: Any) -> Any:
    """Call ``model`` on ``inputs``: a mapping is passed as keywords (a tokenizer's
    BatchEncoding), a tuple positionally, anything else as the one argument."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


# ------------------------------------------------------------- tensor plumbing
def _get(obj: Any, index: int | None) -> Tensor:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, tuple | list):
        return obj[index or 0]
    if hasattr(obj, "to_tuple"):  # a transformers ModelOutput
        return obj.to_tuple()[index or 0]
    raise TypeError(f"cannot read a tensor from a {type(obj).__name__}")


def _put(obj: Any, index: int | None, value: Tensor) -> Any:
    if isinstance(obj, Tensor):
        return value
    if isinstance(obj, tuple | list):
        items = list(obj)
        items[index or 0] = value
        return type(obj)(items) if isinstance(obj, list) else tuple(items)
    if hasattr(obj, "to_tuple"):
        obj[list(obj.keys())[index or 0]] = value
        return obj
    raise TypeError(f"cannot replace a tensor inside a {type(obj).__name__}")


def _select(positions: Positions) -> Any:
    if positions is None:
        return slice(None)
    return [positions] if isinstance(positions, int) else list(positions)


def _apply(name: str, site: Site, t: Tensor, value: Replacement, positions: Positions) -> Tensor:
    """``t`` with ``value`` written in at ``positions`` along the site's position axis."""
    if callable(value) and not isinstance(value, Tensor):
        new = value(t)
        if not isinstance(new, Tensor) or new.shape != t.shape:
            raise UserInputError(
                f"patch function for {name!r} must return a {tuple(t.shape)} tensor"
            )
        return new
    value = value.to(device=t.device, dtype=t.dtype)
    if positions is None:
        if value.shape != t.shape:
            raise UserInputError(
                f"patch for {name!r} has shape {tuple(value.shape)}; the activation there is "
                f"{tuple(t.shape)} (record it from an input of the same batch and length)"
            )
        return value
    index = [slice(None)] * t.ndim
    index[site.pos_dim] = _select(positions)
    out = t.clone()
    full = value.shape == t.shape
    if not full and value.shape != out[tuple(index)].shape:
        raise UserInputError(
            f"patch for {name!r} at positions {positions} must be {tuple(t.shape)} or "
            f"{tuple(out[tuple(index)].shape)}; got {tuple(value.shape)}"
        )
    out[tuple(index)] = value[tuple(index)] if full else value
    return out


# --------------------------------------------------------------- the context
def _check(read: Iterable[str], patches: Iterable[str], sites: Mapping[str, Site]) -> None:
    for name in [*read, *patches]:
        if name not in sites:
            raise unknown_site_error(name, list(sites))
    for name in patches:
        if sites[name].readonly:
            raise UserInputError(
                f"{name!r} can be read but not patched in this model: the module returns it "
                "after using it (patch the attention output or the residual stream instead)"
            )


@contextmanager
def _eager_attention(model: nn.Module, needed: bool) -> Iterator[None]:
    """Switch an HF model to eager attention (the only kind that returns patterns)."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = (
        needed and previous not in (None, "eager") and hasattr(model, "set_attn_implementation")
    )
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(previous)


def _keep(t: Tensor, detach: bool) -> Tensor:
    return t.detach().clone() if detach else t


def _make_output_hook(name, site, shapes, read, store, patches, positions, detach):
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        t = _get(output, site.index)
        if t is None:
            raise RuntimeError(f"{name}: the module returned None here (attention weights?)")
        flat_shape = t.shape
        if site.shape_of is not None:
            t = t.view(shapes[site.shape_of])
        replaced = name in patches
        if replaced:
            t = _apply(name, site, t, patches[name], positions)
        if name in read:
            store[name] = _keep(t, detach)
        if not replaced:
            return None
        return _put(output, site.index, t.reshape(flat_shape))

    return hook


def _first_tensor(args: tuple, kwargs: dict) -> tuple[str | int, Tensor]:
    if args and isinstance(args[0], Tensor):
        return 0, args[0]
    if isinstance(kwargs.get("hidden_states"), Tensor):
        return "hidden_states", kwargs["hidden_states"]
    raise RuntimeError("could not find the input hidden states of this module")


def _make_input_hook(name, site, read, store, patches, positions, detach):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
        where, t = _first_tensor(args, kwargs)
        replaced = name in patches
        if replaced:
            t = _apply(name, site, t, patches[name], positions)
        if name in read:
            store[name] = _keep(t, detach)
        if not replaced:
            return None
        if where == 0:
            return (t, *args[1:]), kwargs
        return args, {**kwargs, where: t}

    return hook


def _shape_hook(shapes: dict, path: str):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        shapes[path] = _first_tensor(args, kwargs)[1].shape

    return hook


@contextmanager
def hooked(
    model: nn.Module,
    *,
    read: Iterable[str] = (),
    patch: Mapping[str, Replacement] | None = None,
    positions: Positions = None,
    detach: bool = True,
) -> Iterator[dict[str, Tensor]]:
    """Hook ``model`` for the duration of the block; yield the dict that receives the
    activations of the ``read`` sites (detached copies unless ``detach=False``, which
    keeps them in the autograd graph; the latest forward wins).

    ``patch`` maps site names to a replacement tensor (of the activation's shape) or a
    function of the activation; ``positions`` restricts replacements to those positions
    (token index along T; query index for attention patterns). All hooks are removed on
    exit, also when the block raises.
    """
    sites = resolve_sites(model)
    read, patches = list(read), dict(patch or {})
    _check(read, patches, sites)
    store: dict[str, Tensor] = {}
    shapes: dict[str, torch.Size] = {}
    needs_eager = any(n.endswith("attn.pattern") for n in [*read, *patches])
    with ExitStack() as stack:
        stack.enter_context(_eager_attention(model, needs_eager))
        for name in dict.fromkeys([*read, *patches]):
            site = sites[name]
            module = model.get_submodule(site.module)
            if site.shape_of is not None:
                owner = model.get_submodule(site.shape_of)
                hook = _shape_hook(shapes, site.shape_of)
                handle = owner.register_forward_pre_hook(hook, with_kwargs=True)
                stack.callback(handle.remove)
            if site.hook == "input":
                hook = _make_input_hook(name, site, set(read), store, patches, positions, detach)
                handle = module.register_forward_pre_hook(hook, with_kwargs=True)
            else:
                hook = _make_output_hook(
                    name, site, shapes, set(read), store, patches, positions, detach
                )
                handle = module.register_forward_hook(hook)
            stack.callback(handle.remove)
        yield store


def capture(
    model: nn.Module,
    inputs: Any,
    sites: Iterable[str] | None = None,
    *,
    grad: bool = False,
) -> dict[str, Tensor]:
    """Run ``model`` on ``inputs`` once and return ``{site: activation}``.

    ``sites=None`` captures every site except attention patterns (ask for those by
    name: they force eager attention). Without ``grad`` the forward runs under
    ``torch.no_grad()``; with it the activations stay in the autograd graph (for
    gradient attributions).
    """
    if sites is None:
        sites = [n for n in available_sites(model) if not n.endswith("attn.pattern")]
    sites = list(sites)
    with torch.set_grad_enabled(grad), hooked(model, read=sites, detach=not grad) as store:
        run_model(model, inputs)
    missing = [s for s in sites if s not in store]
    if missing:
        raise RuntimeError(f"the forward pass never reached {missing} (not used by these inputs?)")
    return {s: store[s] for s in sites}


def patch(
    model: nn.Module,
    inputs: Any,
    replacements: Mapping[str, Replacement],
    *,
    positions: Positions = None,
    read: Iterable[str] = (),
) -> Any:
    """Run ``model`` on ``inputs`` with the ``replacements`` patched in; return its
    output (and, if ``read`` is given, ``(output, {site: activation})``)."""
    read = list(read)
    with torch.no_grad(), hooked(model, read=read, patch=replacements, positions=positions) as s:
        output = run_model(model, inputs)
    return (output, dict(s)) if read else output


def hook_count(model: nn.Module) -> int:
    """How many forward (pre-)hooks are registered anywhere in ``model`` (for checks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
