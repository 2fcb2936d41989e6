"""Fixtures and helpers shared by the test modules (the folders mirror the package)."""

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: end-to-end runs of a minute or more (`make test-fast` skips them)"
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and several threads crawl on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def load_tool() -> Callable[[str], ModuleType]:
    """``load_tool("train")`` imports ``tools/train.py`` (tools/ is no package)."""

    def load(name: str) -> ModuleType:
        path = REPO / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location("parcnetv2_tools_" + name.replace("/", "_"), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
