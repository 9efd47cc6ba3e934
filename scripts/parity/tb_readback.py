#!/usr/bin/env python3
"""Read moirelab TensorBoard event files back with TensorBoard's own EventAccumulator.

Usage: tb_readback.py LOGDIR EXPECTED.json

EXPECTED.json: {"scalars": {tag: [[step, value], ...]}, "images": {tag: [[step, w, h], ...]}}.
Every expected scalar and image must be read back (value within float32 rounding, image
width/height as declared and the PNG decodable); tags the reader sees that are not expected
are errors too. Exits 0 and prints one summary line on success, 1 with the differences
otherwise. Used by moirelab-report's integration tests (run via scripts/test.sh).
"""

import io
import json
import math
import sys


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    logdir, expected_path = sys.argv[1], sys.argv[2]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    # size_guidance 0 = keep everything (the default keeps only 10 images per tag).
    acc = EventAccumulator(logdir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    errors = []

    want_scalars = expected.get("scalars", {})
    got_scalar_tags = set(tags.get("scalars", []))
    for tag in sorted(got_scalar_tags - set(want_scalars)):
        errors.append(f"unexpected scalar tag {tag!r}")
    n_scalars = 0
    for tag, points in want_scalars.items():
        if tag not in got_scalar_tags:
            errors.append(f"scalar tag {tag!r} not read back")
            continue
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        if len(got) != len(points):
            errors.append(f"{tag!r}: {len(got)} events read, {len(points)} expected")
            continue
        for (gs, gv), (ws, wv) in zip(got, points):
            n_scalars += 1
            if gs != ws or not math.isclose(gv, wv, rel_tol=1e-6, abs_tol=1e-7):
                errors.append(f"{tag!r}: read (step {gs}, {gv}), expected (step {ws}, {wv})")

    want_images = expected.get("images", {})
    got_image_tags = set(tags.get("images", []))
    for tag in sorted(got_image_tags - set(want_images)):
        errors.append(f"unexpected image tag {tag!r}")
    n_images = 0
    for tag, items in want_images.items():
        if tag not in got_image_tags:
            errors.append(f"image tag {tag!r} not read back")
            continue
        got = acc.Images(tag)
        if len(got) != len(items):
            errors.append(f"{tag!r}: {len(got)} images read, {len(items)} expected")
            continue
        for ev, (ws, ww, wh) in zip(got, items):
            n_images += 1
            if (ev.step, ev.width, ev.height) != (ws, ww, wh):
                errors.append(
                    f"{tag!r}: read step {ev.step} {ev.width}x{ev.height}, expected step {ws} {ww}x{wh}"
                )
            png = ev.encoded_image_string
            if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                errors.append(f"{tag!r} step {ev.step}: payload is not a PNG")
                continue
            try:
                from PIL import Image  # optional: decode when Pillow is there

                with Image.open(io.BytesIO(png)) as im:
                    if im.size != (ww, wh):
                        errors.append(f"{tag!r} step {ev.step}: PNG decodes to {im.size}")
            except ImportError:
                pass

    if errors:
        print("tb_readback FAIL\n" + "\n".join(errors))
        return 1
    print(f"tb_readback OK scalars={n_scalars} images={n_images}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
