"""The PNG figures as written: Chinese glyphs are really drawn (not tofu boxes), nothing falls off the canvas."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lifecircle import analyze
from lifecircle.datasets import toy_town_osm
from lifecircle.present.figures import coverage_curve, coverage_figure, save_figure
from lifecircle.present.fonts import use_cjk_font


@pytest.fixture(scope="module")
def toy():
    return analyze(toy_town_osm(), admin_level=8)


def _pixels(fig) -> np.ndarray:
    agg = FigureCanvasAgg(fig)
    agg.draw()
    return np.asarray(agg.buffer_rgba())[..., :3].astype(int)


def _glyph(char: str) -> np.ndarray:
    fig = Figure(figsize=(0.6, 0.6), dpi=100)
    fig.text(0.5, 0.5, char, ha="center", va="center", fontsize=28)
    return _pixels(fig)


def test_cjk_glyphs_are_drawn_not_tofu():
    use_cjk_font()
    # with the Noto font two different characters give two different images…
    assert (_glyph("卫") != _glyph("生")).any()
    # …without it (the CJK family removed from rcParams) both are the same missing-glyph box
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}):
        with pytest.warns(UserWarning, match="missing from font"):
            tofu_a, tofu_b = _glyph("卫"), _glyph("生")
    assert (tofu_a == tofu_b).all() and (tofu_a < 128).any()
    assert (_glyph("卫") != tofu_a).any()


@pytest.mark.parametrize("draw", [coverage_figure, coverage_curve])
def test_png_title_has_chinese_and_stays_on_the_canvas(toy, draw, tmp_path):
    fig = draw(toy)
    fig.set_dpi(150)
    with_font = _pixels(fig)
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    box = ax.title.get_window_extent(renderer)
    canvas = fig.bbox
    assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1
    legend = fig.legends[0] if fig.legends else ax.get_legend()
    lbox = legend.get_window_extent(renderer)
    assert canvas.x0 <= lbox.x0 and lbox.x1 <= canvas.x1 and canvas.y0 <= lbox.y0 and lbox.y1 <= canvas.y1
    h = with_font.shape[0]  # window extents count pixels from the bottom, image rows from the top
    rows = slice(int(h - box.y1), int(np.ceil(h - box.y0)))
    cols = slice(int(box.x0), int(np.ceil(box.x1)))
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}), pytest.warns(UserWarning, match="missing"):
        plain = draw(toy)
        plain.set_dpi(150)
        tofu = _pixels(plain)
    assert tofu.shape == with_font.shape
    assert (with_font[rows, cols] != tofu[rows, cols]).any()  # the title region differs: real glyphs, not boxes
    # and the file written is that PNG
    path = save_figure(fig, tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert matplotlib.image.imread(io.BytesIO(path.read_bytes())).shape[:2] == with_font.shape[:2]


def test_a_city_s_streets_are_one_image_with_every_street_on_it(monkeypatch):
    """Above RASTER_STREETS_ABOVE edges the figure's streets are one image: no million-path collection, and
    every street's midpoint is drawn (a pixel within 1 of it is set)."""
    import lifecircle.present.figures as F
    from matplotlib.collections import LineCollection
    from matplotlib.image import AxesImage

    from lifecircle import AnalysisConfig, analyze
    from lifecircle.datasets import helsinki_osm

    a = analyze(helsinki_osm(), config=AnalysisConfig(standard="all", categories=("health", "culture", "sports")))
    monkeypatch.setattr(F, "RASTER_STREETS_ABOVE", 0)
    ax = F.coverage_figure(a).axes[0]
    images = [c for c in ax.get_children() if isinstance(c, AxesImage)]
    assert len(images) == 1 and not any(isinstance(c, LineCollection) for c in ax.collections)
    img = np.asarray(images[0].get_array())
    (x0, x1, y0, y1), (rows, cols) = images[0].get_extent(), img.shape[:2]
    net = a.network
    mx, my = (net.x[net.u] + net.x[net.v]) / 2, (net.y[net.u] + net.y[net.v]) / 2
    inside = (mx > x0) & (mx < x1) & (my > y0) & (my < y1)
    c = np.floor((mx[inside] - x0) / (x1 - x0) * cols).astype(int)
    r = np.floor((y1 - my[inside]) / (y1 - y0) * rows).astype(int)
    alpha = np.pad(img[..., 3] > 0, 1)
    near = np.zeros(len(c), bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            near |= alpha[r + 1 + dr, c + 1 + dc]
    assert inside.sum() > 1000 and near.all()
