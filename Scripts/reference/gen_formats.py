"""Fixtures for Tests/FormatsTests: archives and compressed JSONL made by Python's own gzip,
tarfile, zipfile and the `zstandard` package (pip install zstandard==0.25.0), so the Swift
reader (libarchive) is checked against independent writers.

Run from Scripts/reference/: python3 gen_formats.py  -> ../../Tests/Fixtures/formats/
Deterministic: fixed mtimes, owners and compression levels; re-running reproduces the bytes.
"""
import gzip
import io
import json
import os
import tarfile
import zipfile

import zstandard

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "Fixtures", "formats")

# Lines exercise \r\n, non-ASCII text, an empty line, and a last line without a newline.
JSONL = ('{"text": "hello"}\n'
         '{"text": "caf\u00e9 \u4e2d\u6587 \U0001F600"}\r\n'
         '\n'
         '{"text": "last line has no newline"}').encode("utf-8")
README = b"swift-finetune archive fixture\n"
# 200 000 bytes on one line: longer than the reader's 64 KiB chunks.
LONG = (b"x" * 200_000) + b"\nshort\n"


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as f:
        f.write(data)
    return buf.getvalue()


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(data)


def tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    members = [("data/", None), ("data/README.txt", README), ("data/train.jsonl", JSONL), ("data/long.txt", LONG)]
    files = {
        "lines.jsonl": JSONL,
        "lines.jsonl.gz": gz(JSONL),
        "lines.jsonl.zst": zst(JSONL),
        "long.txt.gz": gz(LONG),
        "bad_utf8.jsonl": b'{"ok": 1}\n{"bad": "\xff\xfe"}\n',
        "truncated.jsonl.gz": gz(JSONL)[:-12],
        "data.tar": tar(members),
        "data.tar.gz": gz(tar(members)),
        "data.tar.zst": zst(tar(members)),
        "data.zip": zipped([m for m in members if m[1] is not None]),
    }
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    # What the Swift tests expect to read back, written by the same script that made the files.
    expected = {
        "lines": JSONL.decode("utf-8").replace("\r\n", "\n").split("\n"),
        "members": [{"name": n, "size": None if d is None else len(d)} for n, d in members],
        "readme": README.decode(),
        "long_line_bytes": 200_000,
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
