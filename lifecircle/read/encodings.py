"""Decode users' text deliberately (UTF-8 or GB18030/GBK, line by line when in doubt) and catch mojibake.

A table is UTF-8 (with or without BOM) or GB18030/GBK. A file mixing both, a Latin-1 file that
happens to decode as GB18030, or text that was mis-decoded once and saved again ("鍚嶇О" for
名称, "åç§°", "Ãû³Æ") is never turned silently into garbled column names or values: the
functions here say which line is wrong and how to fix the file.
"""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputDataError, InputFileError

log = logging.getLogger("lifecircle")

__all__ = ["decode_table_bytes", "garbled", "check_garbled", "dbf_encoding", "resave_hint"]

UTF8_BOM = b"\xef\xbb\xbf"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
#: the fix every encoding message ends with
RESAVE = "re-save the whole file as UTF-8 (Excel: Save As → 'CSV UTF-8'; WPS/Notepad: encoding UTF-8)"


def resave_hint(option: str = "--encoding") -> str:
    """The fix for a badly encoded file (one place, so every message says the same)."""
    return f"{RESAVE}, or name its one real encoding with {option}"


def _line(raw: bytes, offset: int) -> int:
    """1-based line (as a spreadsheet counts, header = line 1) of a byte offset."""
    return raw.count(b"\n", 0, offset) + 1


def _codec(name: str) -> str:
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise InputDataError(f"unknown encoding {name!r}: use utf-8, gb18030 (covers GBK/GB2312), big5 "
                             "or cp1252") from None
    return "utf-8-sig" if info.name == "utf-8" else info.name


def _rare_share(text: str) -> float:
    """Share of the non-ASCII characters of GB18030-decoded text outside GB2312 (common Chinese).

    Real GBK Chinese is almost all GB2312 (lead byte 0xA1-0xF7, trail 0xA1-0xFE); Latin-1 or
    cp1252 bytes decoded as GB18030 give GBK-extension characters (trail byte below 0xA1).
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq, counts = np.unique(codes[codes >= 0x80], return_counts=True)
    if counts.sum() == 0:
        return 0.0
    rare = 0
    for cp, n in zip(uniq.tolist(), counts.tolist()):
        b = chr(cp).encode("gb18030")
        if not (len(b) == 2 and 0xA1 <= b[0] <= 0xF7 and 0xA1 <= b[1] <= 0xFE):
            rare += n
    return rare / float(counts.sum())


def decode_table_bytes(raw: bytes, *, label: str, encoding: str | None = None,
                       option: str = "--encoding") -> tuple[str, str]:
    """Decode a CSV's bytes: UTF-8 (BOM or not) or GB18030, or the ``encoding`` given; never a mix.

    Returns ``(text, encoding_used)``. Raises :class:`InputFileError` naming the first line
    (1-based, header = line 1) that breaks the encoding of the rest of the file.

    Examples
    --------
    >>> decode_table_bytes("名称,lon\\n".encode("gbk"), label="f.csv")
    ('名称,lon\\n', 'gb18030')
    >>> mixed = "名称,lon\\n甲,1\\n".encode("utf-8") + "乙,2\\n".encode("gbk")
    >>> decode_table_bytes(mixed, label="f.csv")
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputFileError: f.csv mixes text encodings: line 1 is UTF-8 but line 3 is not (GBK?); re-save the whole file as UTF-8 (Excel: Save As → 'CSV UTF-8'; WPS/Notepad: encoding UTF-8), or name its one real encoding with --encoding
    """
    if encoding:
        codec = _codec(encoding)
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError as exc:
            raise InputFileError(
                f"{label}: line {_line(raw, exc.start)} is not {encoding} text (byte {raw[exc.start]:#04x}); "
                f"{resave_hint(option)}") from None
        return text, encoding
    bom = raw.startswith(UTF8_BOM)
    body = raw[len(UTF8_BOM):] if bom else raw
    try:
        return body.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError as exc:
        bad = exc.start
    head = body[:bad]
    if bom or not head.isascii():
        first = next(i for i, b in enumerate(head) if b >= 0x80) if not head.isascii() else 0
        what = "starts with a UTF-8 BOM" if bom and head.isascii() else f"line {_line(body, first)} is UTF-8"
        raise InputFileError(f"{label} mixes text encodings: {what} but line {_line(body, bad)} is not (GBK?); "
                             f"{resave_hint(option)}")
    try:
        text = body.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{label} is neither UTF-8 nor GBK text (line {_line(body, exc.start)}, byte "
            f"{body[exc.start]:#04x}); {resave_hint(option)}") from None
    # a GBK file with UTF-8 rows appended decodes as GB18030 too (as mojibake): look line by line
    first_gbk = None
    for i, ln in enumerate(body.split(b"\n"), start=1):
        if ln.isascii():
            continue
        try:
            as_utf8 = ln.decode("utf-8")
        except UnicodeDecodeError:
            first_gbk = first_gbk or i
            continue
        if _CJK.search(as_utf8) and first_gbk is not None:
            raise InputFileError(f"{label} mixes text encodings: line {first_gbk} is GBK but line {i} is UTF-8; "
                                 f"{resave_hint(option)}")
    rare = _rare_share(text)
    if rare > 0.3:
        sample = "".join(sorted({c for c in text if ord(c) >= 0x80 and len(c.encode("gb18030")) > 1
                                 and not (0xA1 <= c.encode("gb18030")[1] <= 0xFE)})[:4])
        raise InputFileError(
            f"{label} is not UTF-8, and read as GBK it gives rare characters ({sample}…: {rare:.0%} of its "
            f"non-ASCII text), so it is probably Latin-1/Windows-1252; {RESAVE}, or give --encoding cp1252")
    log.info("%s: not UTF-8; read as GB18030 (GBK)", label)
    return text, "gb18030"


def garbled(text: str) -> str | None:
    """Why ``text`` looks like mojibake (with the text it was meant to be), or None.

    Catches U+FFFD replacement characters, UTF-8 read as cp1252/Latin-1 ("ä¸\\xadæ–‡" for 中文),
    UTF-8 read as GBK ("鍚嶇О") and GBK read as Latin-1 ("Ãû³Æ"), each saved again.

    Examples
    --------
    >>> garbled("鍚嶇О")
    "UTF-8 read as GBK: it reads '名称'"
    >>> garbled("Ãû³Æ")
    "GBK read as Latin-1: it reads '名称'"
    >>> garbled("名称") is None and garbled("Müller") is None and garbled("Café") is None
    True
    """
    if not isinstance(text, str) or text.isascii():
        return None
    if "\ufffd" in text:
        return "it holds U+FFFD replacement characters (�): the text was decoded with the wrong encoding before"
    if all(ord(c) < 0x100 or c in _CP1252_EXTRA for c in text):
        for codec in ("cp1252", "latin-1"):
            try:
                fixed = text.encode(codec).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            if fixed != text:
                return f"UTF-8 read as {'cp1252' if codec == 'cp1252' else 'Latin-1'}: it reads {fixed!r}"
        try:
            if all(len(run) % 2 == 0 for run in _NON_ASCII_RUN.findall(text)):
                fixed = text.encode("latin-1").decode("gb18030")
                if _CJK.search(fixed) and _plain_chinese(fixed):
                    return f"GBK read as Latin-1: it reads {fixed!r}"
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        return None
    if _CJK.search(text):
        try:
            fixed = text.encode("gb18030").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return None
        if fixed != text and _CJK.search(fixed):
            return f"UTF-8 read as GBK: it reads {fixed!r}"
    return None


def _plain_chinese(text: str) -> bool:
    """Every non-ASCII character is a common hanzi (GB2312 rows 0xB0-0xF7) or Chinese punctuation (0xA1-0xA3)."""
    for c in set(text):
        if ord(c) < 0x80:
            continue
        b = c.encode("gb18030")
        if not (len(b) == 2 and (0xB0 <= b[0] <= 0xF7 or 0xA1 <= b[0] <= 0xA3) and 0xA1 <= b[1] <= 0xFE):
            return False
    return True


_CP1252_EXTRA = frozenset(bytes(range(0x80, 0xA0)).decode("cp1252", errors="ignore"))


def check_garbled(frame, *, label: str, option: str = "--encoding", max_values: int = 5000) -> list[str]:
    """Refuse garbled column names; return a warning for garbled values (a sample of unique strings).

    Examples
    --------
    >>> import pandas as pd
    >>> check_garbled(pd.DataFrame({"名称": ["甲"]}), label="f.csv")
    []
    >>> check_garbled(pd.DataFrame({"ä¸\xadæ–‡": ["甲"]}), label="f.csv")
    Traceback (most recent call last):
    ...
    lifecircle.errors.InputDataError: f.csv: column name 'ä¸\xadæ–‡' is garbled (UTF-8 read as cp1252: it reads '中文'); the file was saved with the wrong encoding: re-save the whole file as UTF-8 (Excel: Save As → 'CSV UTF-8'; WPS/Notepad: encoding UTF-8), or name its one real encoding with --encoding
    """
    for col in frame.columns:
        why = garbled(str(col))
        if why:
            raise InputDataError(f"{label}: column name {str(col)!r} is garbled ({why}); the file was saved with "
                                 f"the wrong encoding: {resave_hint(option)}")
    values: list[str] = []
    for col in frame.columns:
        if col == "geometry" or frame[col].dtype.kind not in "OSUT" and str(frame[col].dtype) not in ("str", "string"):
            continue
        try:
            uniq = frame[col].dropna().unique()[:max_values]
        except TypeError:  # lists or arrays in the cells (DataV 'center'): no text to check
            continue
        values.extend(v for v in uniq if isinstance(v, str) and not v.isascii())
    bad = [(v, w) for v in values for w in [garbled(v)] if w]
    if not bad:
        return []
    v, why = bad[0]
    return [f"{label}: {len(bad):,} text values look garbled (e.g. {v!r}: {why}); names and categories from them "
            f"are wrong: {resave_hint(option)}"]


def dbf_encoding(shp: str | Path, *, max_bytes: int = 32 << 20) -> str | None:
    """The encoding to read a shapefile's attributes with when no ``.cpg`` file says it, or None.

    None when a ``.cpg`` exists, the ``.dbf`` declares its code page (language-driver byte), or the
    attributes are plain ASCII: GDAL then reads them right. Otherwise ``'utf-8'`` if the field
    names and records are valid UTF-8, else ``'gb18030'`` if they are valid GB18030 (GBK; the usual
    case for Chinese government data). Raises :class:`InputFileError` if they are neither.
    """
    shp = Path(shp)
    if any(shp.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((shp.with_suffix(s) for s in (".dbf", ".DBF") if shp.with_suffix(s).exists()), None)
    if dbf is None:
        return None
    with open(dbf, "rb") as f:
        raw = f.read(max_bytes)
    if len(raw) < 32:
        return None
    if raw[29] != 0:
        return None  # the language-driver id names the code page; GDAL honours it
    header_len = int.from_bytes(raw[8:10], "little")
    names = b"".join(raw[i:i + 11].split(b"\0")[0] for i in range(32, max(32, header_len - 1), 32)
                     if raw[i:i + 1] not in (b"\r", b""))
    text = names + b"\n" + raw[header_len:]
    if text.isascii():
        return None
    try:
        text.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # a cut-off last record (max_bytes) may end inside a character
        if exc.start >= len(text) - 4 and len(raw) == max_bytes:
            return "utf-8"
    try:
        decoded = text.decode("gb18030")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and _rare_share(decoded) <= 0.3:
        return "gb18030"
    raise InputFileError(f"{dbf.name}: the attributes are neither UTF-8 nor GBK and there is no .cpg file saying "
                         f"their encoding; write one (e.g. a file {shp.with_suffix('.cpg').name} holding 'GBK' or "
                         "'UTF-8'), or give the encoding with --encoding")


def first_garbled(values: Iterable[str]) -> tuple[str, str] | None:
    """The first garbled string of ``values`` and why (see :func:`garbled`)."""
    for v in values:
        why = garbled(v)
        if why:
            return v, why
    return None
