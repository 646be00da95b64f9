"""The CJK font installs with the package and renders Chinese offline (figures and report pages)."""

from __future__ import annotations

import numpy as np


def _render(text: str, family) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"font.family": family}):
        fig = plt.figure(figsize=(3, 0.6), dpi=80)
        fig.text(0.02, 0.3, text, fontsize=14)
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)
    return img


def test_font_file_is_the_ofl_noto_font():
    from fontTools.ttLib import TTFont

    from lifecircle.present.fonts import cjk_font_path

    font = TTFont(str(cjk_font_path()), lazy=True)
    licence = font["name"].getDebugName(13)
    assert "SIL Open Font License" in licence
    cmap = font.getBestCmap()
    assert all(ord(c) in cmap for c in "卫生养老文化体育静安区江宁路街道社区卫生服务中心覆盖率泖濛")


def test_figures_draw_cjk_glyphs_not_boxes():
    """With the font, 卫生服务 draws glyphs; with DejaVu alone each character is the same empty box (tofu)."""
    from lifecircle.present.fonts import FONT_FAMILY, use_cjk_font

    use_cjk_font()
    with_font = _render("卫生服务", ["DejaVu Sans", FONT_FAMILY])
    boxes = _render("卫生服务", ["DejaVu Sans"])
    ink_with = (with_font < 128).any(axis=2)
    ink_boxes = (boxes < 128).any(axis=2)
    assert ink_with.sum() > 0 and not np.array_equal(ink_with, ink_boxes)
    # four tofu boxes are four copies of one shape; four real characters are four different shapes
    cols = np.flatnonzero(ink_with.any(axis=0))
    assert cols.size > 20


def test_report_font_subset_is_small_and_keeps_the_licence():
    import base64
    import io
    import re

    from fontTools.ttLib import TTFont

    from lifecircle.present.fonts import font_face_css

    css = font_face_css("上海市静安区 15分钟社区生活圈 覆盖率 85 %")
    data = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", css).group(1))
    font = TTFont(io.BytesIO(data))
    assert ord("静") in font.getBestCmap() and ord("鬱") not in font.getBestCmap()
    assert "SIL Open Font License" in font["name"].getDebugName(13)
    assert len(data) < 40_000
    # the localised forms stay: a page with lang="zh-CN" draws the simplified-Chinese glyphs
    features = {r.FeatureTag for r in font["GSUB"].table.FeatureList.FeatureRecord}
    assert "locl" in features and "aalt" not in features
