"""Replaces pyinstaller-hooks-contrib's torch hook (hooks given with ``hookspath`` win).

The contrib hook collects every file under ``torch/`` that is not Python: the C++ headers, the test
suite, ``torch/bin`` (protoc and test binaries) and the test-only libraries add 200 MB that the app
never opens. The Python modules are still all collected: importing ``transformers`` pulls in about a
thousand torch modules (``torch.distributed``, ``torch._dynamo``, ``torch.fx`` ...), and a module left out
fails at run time, not at build time.
"""

from pathlib import Path

from PyInstaller.utils.hooks import (
    PY_DYLIB_PATTERNS,
    collect_data_files,
    collect_dynamic_libs,
    collect_submodules,
    get_package_paths,
)


def get_package_paths_bin(name: str) -> list[Path]:
    path = Path(get_package_paths("torch")[1]) / "bin" / name
    return [path] if path.is_file() else []  # none on Windows


# torch reads some of its own sources at import time (TorchScript, inspect), so they go in as files too.
module_collection_mode = "pyz+py"
warn_on_missing_hiddenimports = False

_UNUSED_TREES = ("include", "test", "bin", "share", "_inductor", "utils/benchmark")
_UNUSED_LIBS = ("libjitbackend_test", "libbackend_with_compiler", "libtorchbind_test", "libaoti_custom_ops")

datas = collect_data_files(
    "torch",
    excludes=[f"{tree}/**" for tree in _UNUSED_TREES]
    + ["**/*.h", "**/*.hpp", "**/*.cuh", "**/*.lib", "**/*.cpp", "**/*.pyi", "**/*.cmake", "**/*.so*"],
)
# torch.testing._internal and torch.onnx are imported by torch itself, so only these two go.
hiddenimports = collect_submodules(
    "torch", filter=lambda name: not name.startswith(("torch.utils.benchmark", "torch.utils.tensorboard")))
binaries = [
    (src, dest) for src, dest in collect_dynamic_libs("torch", search_patterns=[*PY_DYLIB_PATTERNS, "*.so.*"])
    if not any(name in src for name in _UNUSED_LIBS) and "/test/" not in src and "/bin/" not in src
]
# torch checks at import time that its shared-memory manager is there (torch/__init__.py, _manager_path);
# the rest of torch/bin is protoc and C++ test programs.
binaries += [(str(path), "torch/bin") for path in get_package_paths_bin("torch_shm_manager")]
# Links from the top folder to torch/lib confuse torch's own library lookup (see the contrib hook).
bindepend_symlink_suppression = ["**/torch/lib/*.so*"]
