"""A CJK font for figures and reports that works offline: Noto Sans CJK (SIL OFL 1.1), installed from PyPI.

The font file comes with the dependency ``cvttf-NotoSansCJK-Regular`` (a wheel that carries Adobe/Google's
``NotoSansCJKtc-Regular.otf`` unchanged; the font's own name table says "licensed under the SIL Open Font
License, Version 1.1"). It holds every CJK glyph (simplified and traditional); its default forms are the
Traditional-Chinese region's, and HTML pages marked ``lang="zh-CN"`` get the simplified-Chinese forms
through the font's ``locl`` feature. Other PyPI font bundles were rejected: ``mplfonts`` also ships
SimHei, a proprietary font; the others found ship no CJK font.

* :func:`cjk_font_path` finds the file without importing anything heavy;
* :func:`use_cjk_font` registers it with matplotlib (Latin text keeps DejaVu Sans);
* :func:`font_face_css` embeds a subset (only the characters a page uses) as a base64 ``@font-face``,
  so a report opens offline with Chinese text in a few hundred KB.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import logging
from pathlib import Path

from ..errors import LifecircleError

log = logging.getLogger("lifecircle")

__all__ = ["FONT_FAMILY", "FONT_CREDIT", "cjk_font_path", "use_cjk_font", "font_face_css"]

#: The family name the font registers under (matplotlib and CSS).
FONT_FAMILY = "Noto Sans CJK TC"
#: Credit line for reports and figures that embed the font.
FONT_CREDIT = "Noto Sans CJK © Adobe (SIL Open Font License 1.1)"

_PACKAGE = "cvttf_NotoSansCJK_Regular"
_FILE = "NotoSansCJKtc-Regular.otf"


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> Path:
    """Path of the Noto Sans CJK font file installed with lifecircle.

    >>> cjk_font_path().name
    'NotoSansCJKtc-Regular.otf'
    """
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LifecircleError(f"the CJK font package {_PACKAGE} is not installed: reinstall lifecircle "
                              "(pip install -e .) so figures and reports can show Chinese")
    path = Path(list(spec.submodule_search_locations)[0]) / _FILE
    if not path.is_file():
        raise LifecircleError(f"the CJK font file {path} is missing: reinstall {_PACKAGE}")
    return path


@functools.lru_cache(maxsize=1)
def use_cjk_font() -> str:
    """Register the font with matplotlib and put it first in ``font.sans-serif``; returns the family.

    Latin letters and digits still come from DejaVu Sans (matplotlib falls back glyph by glyph).

    >>> use_cjk_font()
    'Noto Sans CJK TC'
    """
    import matplotlib
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(cjk_font_path()))
    rc = matplotlib.rcParams
    # a list of families (not the generic "sans-serif") makes matplotlib fall back glyph by glyph
    rc["font.family"] = ["DejaVu Sans", FONT_FAMILY]
    return FONT_FAMILY


def font_face_css(text: str, *, family: str = FONT_FAMILY) -> str:
    """A CSS ``@font-face`` rule with the font subset to the characters of ``text`` (base64, WOFF-free OTF).

    >>> css = font_face_css("卫生服务中心 15 分钟")
    >>> css.startswith("@font-face") and len(css) < 60_000
    True
    """
    from fontTools import subset

    chars = sorted({c for c in text if ord(c) >= 32})  # the space too, or the browser takes it from another font
    options = subset.Options()
    # fontTools' default features keep locl (lang="zh-CN" gets the simplified-Chinese forms), kern and vert;
    # "*" would also keep aalt's tables of alternates: twice the bytes and a third more time (0.3 s a report)
    options.name_IDs = ["*"]  # keep the licence fields of the name table
    options.notdef_outline = True
    font = subset.load_font(str(cjk_font_path()), options)
    sub = subset.Subsetter(options)
    sub.populate(unicodes=[ord(c) for c in chars])
    sub.subset(font)
    buf = io.BytesIO()
    subset.save_font(font, buf, options)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    log.debug("font subset: %d characters, %d KB", len(chars), len(data) // 1024)
    return (f"@font-face {{ font-family: '{family}'; font-weight: 400; "
            f"src: url(data:font/otf;base64,{data}) format('opentype'); }}")
