#!/usr/bin/env python3
"""libjpeg's JPEG round trip (through Pillow) for moirelab's JPEG model tests.

Reads raw RGB bytes ([h][w][3]), encodes them with Pillow at the given quality and chroma
subsampling (Pillow's 0 = 4:4:4, 2 = 4:2:0, its default), decodes them with Pillow's default
(triangle "fancy" chroma upsampling) and writes the raw RGB bytes back.

Usage: jpeg.py --width W --height H --quality Q --subsampling 0|2 --input in.raw
               --output out.raw
"""

import argparse
import io

from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--quality", type=int, required=True)
    ap.add_argument("--subsampling", type=int, choices=[0, 2], required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    a = ap.parse_args()
    with open(a.input, "rb") as f:
        raw = f.read()
    img = Image.frombytes("RGB", (a.width, a.height), raw)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=a.quality, subsampling=a.subsampling)
    buf.seek(0)
    out = Image.open(buf).convert("RGB")
    with open(a.output, "wb") as f:
        f.write(out.tobytes())


if __name__ == "__main__":
    main()
