"""Canonical site names, and how each model family maps them onto its modules.

A *site* is a named activation: ``embed``, ``blocks.{i}.resid_pre``,
``blocks.{i}.attn_out``, ``blocks.{i}.mlp_out``, ``blocks.{i}.resid_post``, ``final``,
``logits`` and, where the attention is computed explicitly, ``blocks.{i}.attn.pattern``
(docs/architecture.md, "Site names"). The same name means the same tensor in every family:

* ``embed`` (B, T, D) — the embeddings that enter the first block (token/patch +
  position; CLIP's vision tower applies a pre-layernorm between the two);
* ``blocks.{i}.resid_pre`` / ``resid_post`` (B, T, D) — the block's input / output;
* ``blocks.{i}.attn_out`` / ``mlp_out`` (B, T, D) — each sublayer's contribution
  *before* it is added to the residual stream (after any layer scale; for post-LN
  encoders such as BERT, before the add-and-norm);
* ``final`` (B, T, D) — the model's ``last_hidden_state`` (after the final norm where
  the model has one);
* ``logits`` (B, T, V) — the output head where the model has one (classifier heads
  such as ViT's give (B, C));
* ``blocks.{i}.attn.pattern`` (B, H, T_query, T_key) — attention probabilities (HF
  models are switched to eager attention while a pattern is hooked).

Models with two towers prefix the names: ``text.`` / ``vision.`` (CLIP),
``encoder.`` / ``decoder.`` (Whisper); ``logits`` stays unprefixed.

A :class:`Site` says where a name lives in one model instance: a module, whether the
tensor is its output (forward hook) or its input (forward pre-hook), and which element
of a tuple output it is. A *family* turns a model into its ``{name: Site}`` table;
families are kept in the :data:`FAMILIES` registry so users can add their own
(:func:`register_family`, see docs/instruments.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from torch import nn

from fmlab.errors import UserInputError
from fmlab.registry import Registry

CANONICAL = ("embed", "resid_pre", "attn_out", "mlp_out", "resid_post", "final", "logits")


@dataclass(frozen=True)
class Site:
    """Where one activation lives: ``module``'s output (``hook="output"``) or input
    (``hook="input"``, read with a forward pre-hook).

    ``index`` picks an element of a tuple output (attention modules return
    ``(out, weights)``); ``None`` means the whole tensor, or element 0 of a tuple.
    ``shape_of`` names a module whose input has the (B, T, D) shape this activation
    should be viewed as (OPT's ``fc2`` works on flattened (B·T, D) rows).
    ``pos_dim`` is the tensor dimension that indexes positions (2 for patterns).
    ``readonly`` marks a tensor that is returned after it was used (an HF attention
    module's weights): it can be read, but replacing it would change nothing.
    """

    module: str
    hook: Literal["output", "input"] = "output"
    index: int | None = None
    shape_of: str | None = None
    pos_dim: int = 1
    readonly: bool = False


class UnsupportedModelError(UserInputError):
    """No registered family knows this model; the message lists the known families."""


@runtime_checkable
class Family(Protocol):
    """Maps one kind of model onto canonical sites (register with :func:`register_family`)."""

    name: str

    def matches(self, model: nn.Module) -> bool: ...

    def sites(self, model: nn.Module) -> dict[str, Site]: ...

    def lens(self, model: nn.Module, tower: str = "") -> Any:
        """A function from a residual stream (B, T, D) to logits (B, T, V), or None."""
        ...


FAMILIES: Registry[Family] = Registry("model family")


def register_family(family: Family) -> Family:
    """Add a family mapping (an :class:`HFFamily` or any object with the
    :class:`Family` methods); returns it, so it also works as a decorator target."""
    if not isinstance(family, Family):
        raise TypeError(f"{family!r} lacks the Family methods: name, matches, sites, lens")
    FAMILIES.add(family.name, family)
    return family


def _model_type(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None)


def family_of(model: nn.Module) -> Family:
    """The registered family that knows ``model``; a clear error if none does. (Importing
    any module of :mod:`fmlab.hooks` runs the package's ``__init__``, which registers the
    bundled families.)"""
    for _, fam in FAMILIES.items():
        if fam.matches(model):
            return fam
    kind = _model_type(model)
    what = f"model_type {kind!r} ({type(model).__name__})" if kind else type(model).__name__
    raise UnsupportedModelError(
        f"no site mapping for {what}. Supported families: {', '.join(FAMILIES.names())}. "
        "To add one, describe where its blocks and sublayers live with "
        "fmlab.hooks.HFFamily(name=..., model_types=(...), towers={'': Tower(...)}) and "
        "call fmlab.hooks.register_family(...) — see docs/instruments.md."
    )


def resolve_sites(model: nn.Module) -> dict[str, Site]:
    """``{canonical name: Site}`` for every site this model has."""
    return family_of(model).sites(model)


def unknown_site_error(name: str, known: list[str]) -> UserInputError:
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(_compress(known))
    return UserInputError(f"unknown site {name!r}.{hint} This model has: {shown}")


def _compress(names: list[str]) -> list[str]:
    """``blocks.0.x … blocks.11.x`` → ``blocks.{0..11}.x`` so long listings stay short."""
    import re

    groups: dict[str, list[int]] = {}
    out: list[str] = []
    for n in names:
        m = re.fullmatch(r"(.*blocks\.)(\d+)(\..*)", n)
        if m is None:
            out.append(n)
            continue
        key = f"{m.group(1)}{{}}{m.group(3)}"
        if key not in groups:
            groups[key] = []
            out.append(key)
        groups[key].append(int(m.group(2)))
    return [n.format(f"{{{min(groups[n])}..{max(groups[n])}}}") if n in groups else n for n in out]


# ------------------------------------------------------------------ HF families
@dataclass(frozen=True)
class Tower:
    """One stack of blocks in a Hugging Face model.

    ``roots`` are candidate module paths of the tower (the first one under which
    ``blocks`` exists wins: ``"transformer"`` inside GPT2LMHeadModel, ``""`` for a bare
    GPT2Model). ``blocks`` is the ModuleList of blocks, relative to the root.
    ``block_sites`` maps a per-block name to a :class:`Site` whose module is relative
    to the block (``""`` = the block itself). ``sites`` maps model-level names to Sites
    whose module may use ``{root}`` and ``{last}`` (the last block's index); a missing
    module simply means the model lacks that site. ``lens`` lists the modules that turn
    a residual stream into logits (final norm, projections, unembedding), in order;
    missing ones are skipped, and no unembedding means no logit lens.
    """

    roots: tuple[str, ...]
    blocks: str
    block_sites: Mapping[str, Site]
    sites: Mapping[str, Site] = field(default_factory=dict)
    lens: tuple[str, ...] = ()


@dataclass(frozen=True)
class HFFamily:
    """A Hugging Face family: the ``model_type`` values it covers and its towers
    (``{"": Tower}`` for one tower; ``{"text": …, "vision": …}`` prefixes names).
    ``head`` holds top-level sites such as ``logits`` (module paths from the top)."""

    name: str
    model_types: tuple[str, ...]
    towers: Mapping[str, Tower]
    head: Mapping[str, Site] = field(default_factory=dict)

    def matches(self, model: nn.Module) -> bool:
        return _model_type(model) in self.model_types

    def _root(self, model: nn.Module, tower: Tower) -> str | None:
        for root in tower.roots:
            if _find(model, _join(root, tower.blocks)) is not None:
                return root
        return None

    def sites(self, model: nn.Module) -> dict[str, Site]:
        out: dict[str, Site] = {}
        for prefix, tower in self.towers.items():
            root = self._root(model, tower)
            if root is None:
                paths = ", ".join(_join(r, tower.blocks) or "(top)" for r in tower.roots)
                raise UnsupportedModelError(
                    f"{type(model).__name__} (family {self.name}) has no block list at {paths}; "
                    "this mapping was written for transformers 5.x module names"
                )
            blocks_path = _join(root, tower.blocks)
            n_blocks = len(_find(model, blocks_path))
            pre = f"{prefix}." if prefix else ""
            embed = Site(f"{blocks_path}.0", "input")
            out[f"{pre}embed"] = embed
            for i in range(n_blocks):
                for name, s in sorted(tower.block_sites.items(), key=_forward_order):
                    out[f"{pre}blocks.{i}.{name}"] = _rebase(s, _join(blocks_path, str(i)))
            for name, s in tower.sites.items():
                path = s.module.format(root=root, last=n_blocks - 1).lstrip(".")
                if _find(model, path) is not None:
                    out[f"{pre}{name}"] = replace(s, module=path)
        out |= {n: s for n, s in self.head.items() if _find(model, s.module) is not None}
        return out

    def lens(self, model: nn.Module, tower: str = "") -> Any:
        if tower not in self.towers:
            raise UserInputError(
                f"family {self.name} has towers {list(self.towers)}; got tower={tower!r}"
            )
        spec = self.towers[tower]
        root = self._root(model, spec) or ""
        paths = [p.format(root=root).lstrip(".") for p in spec.lens]
        if not paths or _find(model, paths[-1]) is None:
            return None  # no unembedding (a base model without its LM head)
        mods = [m for m in (_find(model, p) for p in paths) if m is not None]

        def apply(x):  # (B, T, D) -> (B, T, V)
            for m in mods:
                x = m(x)
            return x[0] if isinstance(x, tuple) else x

        return apply


_ORDER = ("resid_pre", "attn.pattern", "attn_out", "cross_attn_out", "mlp_out", "resid_post")


def _forward_order(item: tuple[str, Site]) -> int:
    return _ORDER.index(item[0]) if item[0] in _ORDER else len(_ORDER) - 1


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _rebase(site: Site, block: str) -> Site:
    shape_of = None if site.shape_of is None else _join(block, site.shape_of)
    return replace(site, module=_join(block, site.module), shape_of=shape_of)


def _find(model: nn.Module, path: str) -> Any:
    """The submodule at ``path`` ("" = the model), or None where it is absent/None."""
    if not path:
        return model
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None
