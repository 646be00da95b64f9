"""Repository-wide pytest hooks: notebooks that read the Shanghai sample (../shared/data) are skipped where it is absent."""

from __future__ import annotations

import pytest

from lifecircle.datasets import shared_data_dir


def pytest_collection_modifyitems(config, items):
    if shared_data_dir() is not None:
        return
    skip = pytest.mark.skip(reason="needs the Shanghai sample in ../shared/data (see notebooks/README.md)")
    for item in items:
        path = getattr(item, "path", None)
        if path is not None and path.suffix == ".ipynb" and "shared_data_dir" in path.read_text(encoding="utf-8"):
            item.add_marker(skip)
