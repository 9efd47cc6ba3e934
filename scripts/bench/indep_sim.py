#!/usr/bin/env python3
"""A second, independent recapture simulation, for measuring transfer off moirelab's generator.

moirelab's generator (crates/moirelab-synth) renders a screen as a Fourier series of its
sub-pixel grid evaluated at sensor pixels, on one card design. A detector trained on it can
learn that rendering instead of screen recapture. This script renders the same physics the
other way round, with its own card designs and its own camera, so that a detector's accuracy
here says how much of what it learnt is tied to our implementation:

- cards: drawn with Pillow (its own layout family: header band, portrait on either side,
  text in a real font, optional flag/emblem/MRZ/signature, a fine guilloche);
- screen: the attacker's file (optionally a JPEG) resampled by Pillow to the display's
  resolution, shown per display pixel through a spatial aperture map (RGB/BGR stripe,
  vertical stripe, PenTile diamond, or a delta/triangle layout that moirelab does not have),
  with panel gamma, black level, white point, PWM bands and reflections on the cover glass;
- camera: brute-force supersampling of the radiance through a homography, a Gaussian lens
  at the supersampled resolution, the pixel's area, a Bayer mosaic with channel crosstalk,
  Poisson + read noise, 10-bit quantisation, bilinear or edge-directed demosaicing, grey-world
  white balance, a saturation matrix, sRGB, chroma noise reduction, unsharp masking, and
  Pillow's own JPEG (4:2:0 unless drawn otherwise), Pillow's resize (or an aliasing
  bilinear one), an upload JPEG;
- genuine cards go through the same camera and scene draws, as printed plastic under a lamp.

Both classes draw every camera parameter from one distribution. Ranges are wider than
moirelab's defaults on purpose (display pitch down to 0.12 output pixels, sensor up to 4x the
output size, stronger defocus and noise): this is a transfer test, not a copy.

Usage: indep_sim.py --out DIR [--size 128] [--count 400] [--seed 1] [--workers 2]
                    [--plain-cards]
Writes DIR/test/{direct,screen}/NNNNN.png (ImageFolder, test split only) and DIR/params.jsonl
(every image's draws, to break a detector's errors down by them).

Diagnostics (what a detector's errors depend on; docs/SYNTH.md, "card designs and desks"):
--plain-cards draws pale cards without a header band, portrait on the left; INDEP_ABLATE, a
comma-separated list, switches stages off or pushes them: noise, jpeg, sharpen, chroma,
upload, glare, sat, tone, paper (camera and surface stages); face, guil, bigtext, faint, bold,
blank (card content: no face, no guilloche, larger lettering, half or 1.6x contrast, a
uniform card); bgdark, sharp, ideal (a dark desk, lens blur 0.3-0.8 px, no mosaic/noise/
demosaic). INDEP_MASK=1 also writes DIR/masks/NNNNN.png, the card's coverage.
"""

import argparse
import io
import json
import math
import os
import sys
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CARD_AR = 85.6 / 53.98
CARD_W = 1400
CARD_H = int(round(CARD_W / CARD_AR))
ABLATE = set(filter(None, os.environ.get("INDEP_ABLATE", "").split(",")))
LAYOUTS = ["rgb", "bgr", "vertical", "pentile", "delta"]


def logu(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# --------------------------------------------------------------------------------------------
# Card


def font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def rand_word(rng, lo=3, hi=9, alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
    n = int(rng.integers(lo, hi + 1))
    return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), n))


def guilloche(rng, w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    r = np.hypot(x - cx, y - cy)
    th = np.arctan2(y - cy, x - cx)
    period = rng.uniform(6.0, 16.0)
    lobes = int(rng.integers(5, 14))
    amp = rng.uniform(2.0, 10.0)
    phase = 2 * np.pi * (r + amp * np.sin(lobes * th)) / period
    lines = np.clip((np.cos(phase) - 0.75) / 0.25, 0, 1)
    # a second, linear family
    ang = rng.uniform(0, np.pi)
    p2 = rng.uniform(5.0, 14.0)
    wav = (x * np.cos(ang) + y * np.sin(ang)) + rng.uniform(3, 12) * np.sin(y / rng.uniform(20, 60))
    lines2 = np.clip((np.cos(2 * np.pi * wav / p2) - 0.8) / 0.2, 0, 1)
    return np.maximum(lines, lines2 * (rng.uniform() < 0.6))


CORNER = 0.037  # ISO/IEC 7810 ID-1 corner radius, 3.18 mm of 85.6 mm


def rounded(u, v):
    """Inside the card outline, for u, v in card widths."""
    r = CORNER
    cu = np.clip(u, r, 1 - r)
    cv = np.clip(v, r, 1 / CARD_AR - r)
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1 / CARD_AR)
    return inside & ((u - cu) ** 2 + (v - cv) ** 2 <= r * r)


def draw_card(rng, plain=False):
    w, h = CARD_W, CARD_H
    base = rng.uniform(0.78, 0.97, 3)
    tint = rng.uniform(0.85, 1.0, 3)
    if plain:  # moirelab's look: a pale, nearly white card
        base, tint = np.array([0.9, 0.95, 0.92]) * rng.uniform(0.97, 1.03, 3), np.ones(3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = 1 - 0.12 * (xx / w) * rng.uniform(-1, 1) - 0.12 * (yy / h) * rng.uniform(-1, 1)
    img = (base * tint)[None, None, :] * grad[..., None]
    ink = rng.uniform(0.3, 0.8, 3)
    g = guilloche(rng, w, h)[..., None] * rng.uniform(0.15, 0.45)
    if "guil" in ABLATE:
        g = g * 0
    img = img * (1 - g) + ink[None, None, :] * g
    im = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    d = ImageDraw.Draw(im)

    def col(lo, hi):
        return tuple(int(v) for v in rng.integers(lo, hi, 3))

    # header band
    hb = int(h * rng.uniform(0.1, 0.18))
    hcol = col(20, 170)
    if rng.uniform() < 0.8 and not plain:
        d.rectangle([0, 0, w, hb], fill=hcol)
    d.text((int(w * rng.uniform(0.25, 0.4)), int(hb * 0.2)), rand_word(rng, 6, 12) + " " + rand_word(rng, 4, 8),
           fill=(250, 250, 250) if rng.uniform() < 0.8 and not plain else (60, 60, 60), font=font(int(hb * 0.5)))
    # portrait on the left or right
    left = rng.uniform() < 0.7 or plain
    pw = int(w * rng.uniform(0.26, 0.33))
    ph = int(pw * rng.uniform(1.2, 1.35))
    px = int(w * 0.04) if left else w - pw - int(w * 0.04)
    py = int(hb + (h - hb - ph) * rng.uniform(0.2, 0.7))
    d.rectangle([px, py, px + pw, py + ph], fill=col(150, 245) if not plain else (215, 225, 235))
    if "face" not in ABLATE:
        skin = [(241, 194, 160), (224, 172, 125), (198, 134, 86), (141, 85, 52), (92, 58, 36), (255, 220, 190)]
        s = skin[int(rng.integers(0, len(skin)))]
        s = tuple(int(np.clip(v * rng.uniform(0.9, 1.1), 0, 255)) for v in s)
        cx = px + pw // 2 + int(rng.normal(0, pw * 0.04))
        d.ellipse([px - pw * 0.05, py + ph * 0.72, px + pw * 1.05, py + ph * 1.25], fill=col(10, 120))
        d.rectangle([cx - pw * 0.1, py + ph * 0.55, cx + pw * 0.1, py + ph * 0.8], fill=s)
        hw, hh = pw * rng.uniform(0.27, 0.34), ph * rng.uniform(0.27, 0.33)
        hcy = py + ph * 0.42
        hair = col(10, 110)
        d.ellipse([cx - hw * 1.08, hcy - hh * 1.15, cx + hw * 1.08, hcy + hh * rng.uniform(0.2, 0.9)], fill=hair)
        d.ellipse([cx - hw, hcy - hh, cx + hw, hcy + hh], fill=s)
        for sx in (-1, 1):
            ex = cx + sx * hw * 0.42
            d.ellipse([ex - hw * 0.13, hcy - hh * 0.18, ex + hw * 0.13, hcy - hh * 0.02], fill=(245, 245, 245))
            d.ellipse([ex - hw * 0.06, hcy - hh * 0.16, ex + hw * 0.06, hcy - hh * 0.04], fill=col(10, 90))
        d.line([cx, hcy, cx - hw * 0.08, hcy + hh * 0.3, cx + hw * 0.05, hcy + hh * 0.33], fill=tuple(int(v * 0.8) for v in s), width=3)
        d.ellipse([cx - hw * 0.3, hcy + hh * 0.5, cx + hw * 0.3, hcy + hh * 0.62], fill=(150, 60, 60))
    # text fields
    tx0 = px + pw + int(w * 0.04) if left else int(w * 0.05)
    tx1 = w - int(w * 0.04) if left else px - int(w * 0.03)
    y = hb + int(h * 0.06)
    tscale = 1.8 if "bigtext" in ABLATE else 1.0
    small, big = font(int(h * 0.028 * tscale)), font(int(h * rng.uniform(0.04, 0.055) * tscale))
    ink_t = col(0, 60)
    while y < h * (0.68 if rng.uniform() < 0.6 else 0.85):
        d.text((tx0, y), rand_word(rng, 4, 10).lower(), fill=col(90, 150), font=small)
        y += int(h * 0.035)
        d.text((tx0, y), rand_word(rng, 3, 12) + (" " + rand_word(rng, 3, 9) if rng.uniform() < 0.5 else ""),
               fill=ink_t, font=big)
        y += int(h * rng.uniform(0.065, 0.09))
    # flag, emblem, signature
    if rng.uniform() < 0.7:
        fw, fh = int(w * rng.uniform(0.09, 0.14)), int(h * rng.uniform(0.09, 0.13))
        fx = int(rng.uniform(tx0, max(tx0 + 1, tx1 - fw)))
        fy = int(rng.uniform(h * 0.02, max(h * 0.03, hb - fh * 0.3))) if rng.uniform() < 0.5 else int(h - fh - h * 0.05)
        n = int(rng.integers(2, 4))
        vert = rng.uniform() < 0.5
        for i in range(n):
            c = col(0, 256)
            if vert:
                d.rectangle([fx + i * fw // n, fy, fx + (i + 1) * fw // n, fy + fh], fill=c)
            else:
                d.rectangle([fx, fy + i * fh // n, fx + fw, fy + (i + 1) * fh // n], fill=c)
    if rng.uniform() < 0.6:
        r = int(h * rng.uniform(0.06, 0.12))
        ex, ey = int(rng.uniform(tx0 + r, max(tx0 + r + 1, tx1 - r))), int(rng.uniform(h * 0.45, h * 0.85))
        d.ellipse([ex - r, ey - r, ex + r, ey + r], outline=col(60, 200), width=max(2, r // 8))
    if rng.uniform() < 0.7:
        pts = []
        sx, sy = tx0 + int(rng.uniform(0, 0.3) * (tx1 - tx0)), int(h * rng.uniform(0.7, 0.82))
        for t in np.linspace(0, 1, 40):
            pts.append((sx + t * w * 0.25, sy + h * 0.04 * math.sin(t * rng.uniform(8, 20)) * rng.uniform(0.5, 1)))
        d.line(pts, fill=(20, 20, 90), width=3)
    if rng.uniform() < 0.6:
        mono = font(int(h * 0.05 * tscale))
        for i in range(int(rng.integers(2, 4))):
            line = rand_word(rng, 30, 30, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<<<<<<")
            d.text((int(w * 0.04), int(h * (0.78 + 0.07 * i))), line, fill=(15, 15, 15), font=mono)
    return np.asarray(im, dtype=np.float32) / 255.0


# --------------------------------------------------------------------------------------------
# Helpers


def srgb_to_lin(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def lin_to_srgb(v):
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def gauss1d(a, sigma, axis):
    if sigma < 0.15:
        return a
    r = int(math.ceil(3.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r, r)
    ap = np.pad(a, pad, mode="reflect")
    out = np.zeros_like(a)
    n = a.shape[axis]
    for i, kv in enumerate(k):
        out += kv * np.take(ap, np.arange(i, i + n), axis=axis)
    return out


def gauss2d(a, sigma):
    return gauss1d(gauss1d(a, sigma, 0), sigma, 1)


def homography(src, dst):
    """3x3 H with dst ~ H @ src for four point pairs."""
    a = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(a, dtype=np.float64))
    h = vt[-1].reshape(3, 3)
    return h / h[2, 2]


def bilinear_lookup(tex, u, v):
    """tex HxWx3, u/v in texel units (pixel centres at i + 0.5), clamped at the border."""
    h, w = tex.shape[:2]
    x = np.clip(u - 0.5, 0, w - 1.001)
    y = np.clip(v - 0.5, 0, h - 1.001)
    x0, y0 = x.astype(np.int32), y.astype(np.int32)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    a, b = tex[y0, x0], tex[y0, x0 + 1]
    c, d = tex[y0 + 1, x0], tex[y0 + 1, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


# --------------------------------------------------------------------------------------------
# Surfaces: radiance at card-plane points


def aperture(layout, fx, fy, ix, iy, aw, ah):
    """Per-channel aperture (0/1) of a display pixel at fractional position (fx, fy), and the
    per-channel fill fraction (the mask's mean), for a pixel at integer index (ix, iy)."""
    m = np.zeros(fx.shape + (3,), dtype=np.float32)
    fill = np.zeros(3, dtype=np.float32)
    if layout in ("rgb", "bgr", "vertical"):
        a, b = (fx, fy) if layout != "vertical" else (fy, fx)
        inb = np.abs(b - 0.5) <= ah / 2
        for c in range(3):
            slot = c if layout != "bgr" else 2 - c
            centre = (slot + 0.5) / 3
            m[..., c] = (np.abs(a - centre) <= aw / 6) & inb
            fill[c] = aw / 3 * ah
    elif layout == "pentile":
        # green diamond in every pixel's lower half; red/blue larger diamonds alternate in the
        # upper half on a checkerboard.
        rg = 0.22 * aw
        m[..., 1] = (np.abs(fx - 0.5) + np.abs(fy - 0.72)) <= rg
        rb = 0.3 * aw
        big = (np.abs(fx - 0.5) + np.abs(fy - 0.28)) <= rb
        red = ((ix + iy) % 2) == 0
        m[..., 0] = big & red
        m[..., 2] = big & ~red
        fill[1] = 2 * rg * rg
        fill[0] = fill[2] = rb * rb  # half the pixels carry it
    else:  # delta: one sub-pixel per pixel position, colours rotating, rows shifted 1.5 pixels
        c = (ix + 2 * (iy % 2)) % 3
        sel = (np.abs(fx - 0.5) <= aw / 2) & (np.abs(fy - 0.5) <= ah / 2)
        for k in range(3):
            m[..., k] = sel & (c == k)
            fill[k] = aw * ah / 3
    return m, fill


class Screen:
    def __init__(self, rng, card, card_w_sensor):
        self.layout = LAYOUTS[int(rng.integers(0, len(LAYOUTS)))]
        self.p_s = logu(rng, 0.6, 5.0)  # sensor pixels per display pixel
        self.nd = max(24, int(round(card_w_sensor / self.p_s)))
        self.md = max(16, int(round(self.nd / CARD_AR)))
        # the attacker's file: a scan of the card, its rounded corners on the scan's white
        yy, xx = np.mgrid[0:CARD_H, 0:CARD_W].astype(np.float32)
        inside = rounded((xx + 0.5) / CARD_W, (yy + 0.5) / CARD_W)[..., None]
        card = np.where(inside, card, np.float32(rng.uniform(0.85, 1.0)))
        f = Image.fromarray((card * 255).astype(np.uint8))
        if rng.uniform() < 0.5:
            b = io.BytesIO()
            f.save(b, "JPEG", quality=int(rng.integers(70, 96)))
            f = Image.open(io.BytesIO(b.getvalue())).convert("RGB")
        method = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS][int(rng.integers(0, 3))]
        disp = np.asarray(f.resize((self.nd, self.md), method), dtype=np.float32) / 255.0
        self.gamma = rng.uniform(1.9, 2.6)
        self.black = 0.0 if self.layout == "pentile" else logu(rng, 0.002, 0.03)
        wp = np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.9, 1.1)], dtype=np.float32)
        sat = rng.uniform(0.9, 1.2)
        lin = disp ** self.gamma
        y = lin.mean(axis=2, keepdims=True)
        lin = np.clip(y + sat * (lin - y), 0, 1)
        self.emit = (self.black + (1 - self.black) * lin) * wp
        bg = rng.uniform(0.0, 1.0) ** 0.7
        self.bg = ((self.black + (1 - self.black) * (np.full(3, bg) * rng.uniform(0.9, 1.0, 3)) ** self.gamma) * wp).astype(np.float32)
        self.ox, self.oy = rng.uniform(0, 1), rng.uniform(0, 1)  # card offset within the pixel grid
        self.aw = rng.uniform(0.6, 0.95)
        self.ah = rng.uniform(0.7, 0.95)
        self.params = dict(layout=self.layout, pitch_sensor=round(self.p_s, 3), display_w=self.nd,
                           gamma=round(self.gamma, 3), black=round(self.black, 4))

    def radiance(self, u, v):
        """u, v in card widths (0..1 across the card)."""
        dx = self.ox + u * self.nd
        dy = self.oy + v * self.nd
        ix, iy = np.floor(dx).astype(np.int64), np.floor(dy).astype(np.int64)
        fx, fy = dx - ix, dy - iy
        inside = (ix >= 0) & (ix < self.nd) & (iy >= 0) & (iy < self.md)
        e = np.empty(u.shape + (3,), dtype=np.float32)
        e[...] = self.bg
        e[inside] = self.emit[iy[inside], ix[inside]]
        m, fill = aperture(self.layout, fx, fy, ix, iy, self.aw, self.ah)
        return e * m / fill


class Print:
    def __init__(self, rng, card):
        self.tex = srgb_to_lin(card).astype(np.float32)
        self.texture_amp = rng.uniform(0.005, 0.04)
        if "paper" in ABLATE:
            self.texture_amp = 0.0
        self.noise = rng.normal(0, 1, (CARD_H // 2, CARD_W // 2, 1)).astype(np.float32)
        self.noise = gauss2d(self.noise, rng.uniform(0.5, 2.0))
        self.noise /= self.noise.std() + 1e-6
        self.bg = (rng.uniform(0.05, 0.8) * rng.uniform(0.7, 1.0, 3)).astype(np.float32)
        if "bgdark" in ABLATE:
            self.bg = (rng.uniform(0.01, 0.05) * rng.uniform(0.5, 1.0, 3)).astype(np.float32)
        self.params = dict(paper=round(self.texture_amp, 4))

    def radiance(self, u, v):
        inside = rounded(u, v)
        e = np.empty(u.shape + (3,), dtype=np.float32)
        e[...] = self.bg
        tu, tv = u[inside] * CARD_W, v[inside] * CARD_W
        e[inside] = bilinear_lookup(self.tex, tu, tv) * (1 + self.texture_amp * bilinear_lookup(self.noise, tu / 2, tv / 2))
        return e


# --------------------------------------------------------------------------------------------
# Camera


def demosaic_bilinear(raw, masks):
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 4
    out = np.empty(raw.shape + (3,), dtype=np.float32)
    pr = np.pad(raw, 1, mode="reflect")
    for c in range(3):
        pm = np.pad(masks[c].astype(np.float32), 1, mode="reflect")
        num = np.zeros_like(raw)
        den = np.zeros_like(raw)
        for dy in range(3):
            for dx in range(3):
                num += k[dy, dx] * (pr * pm)[dy:dy + raw.shape[0], dx:dx + raw.shape[1]]
                den += k[dy, dx] * pm[dy:dy + raw.shape[0], dx:dx + raw.shape[1]]
        out[..., c] = np.where(masks[c], raw, num / np.maximum(den, 1e-6))
    return out


def demosaic_edge(raw, masks):
    """Hamilton-Adams-like: green along the smoother direction, then colour differences."""
    h, w = raw.shape
    p = np.pad(raw, 2, mode="reflect")

    def s(dy, dx):
        return p[2 + dy:2 + dy + h, 2 + dx:2 + dx + w]

    gh = (s(0, -1) + s(0, 1)) / 2 + (2 * raw - s(0, -2) - s(0, 2)) / 4
    gv = (s(-1, 0) + s(1, 0)) / 2 + (2 * raw - s(-2, 0) - s(2, 0)) / 4
    dh = np.abs(s(0, -1) - s(0, 1)) + np.abs(2 * raw - s(0, -2) - s(0, 2))
    dv = np.abs(s(-1, 0) - s(1, 0)) + np.abs(2 * raw - s(-2, 0) - s(2, 0))
    g = np.where(dh < dv, gh, np.where(dv < dh, gv, (gh + gv) / 2))
    g = np.where(masks[1], raw, g)
    out = np.empty(raw.shape + (3,), dtype=np.float32)
    out[..., 1] = g
    for c in (0, 2):
        diff = np.where(masks[c], raw - g, 0)
        cd = demosaic_bilinear(diff, [masks[c]] * 3)[..., 0]
        out[..., c] = g + cd
    return np.clip(out, 0, 1)


def to_ycc(rgb):
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return y, rgb[..., 2] - y, rgb[..., 0] - y


def from_ycc(y, cb, cr):
    r = y + cr
    b = y + cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.stack([r, g, b], axis=-1)


def jpeg(img_u8, q, sub):
    b = io.BytesIO()
    Image.fromarray(img_u8).save(b, "JPEG", quality=int(q), subsampling=sub)
    return np.asarray(Image.open(io.BytesIO(b.getvalue())).convert("RGB"))


def render(job):
    idx, label, size, seed, plain = job
    rng = np.random.default_rng([seed, idx, 0 if label == "direct" else 1])
    params = dict(index=idx, label=label)
    k = logu(rng, 1.5, 4.0) if size <= 160 else logu(rng, 1.25, 3.0)
    ns = int(round(size * k))
    card = draw_card(rng, plain)
    if "faint" in ABLATE:
        m = card.reshape(-1, 3).mean(axis=0)
        card = m + 0.5 * (card - m)
    if "bold" in ABLATE:
        m = card.reshape(-1, 3).mean(axis=0)
        card = np.clip(m + 1.6 * (card - m), 0, 1)
    if "blank" in ABLATE:
        card = np.ones_like(card) * card.reshape(-1, 3).mean(axis=0)
    # scene: the card covers 65-95 % of the frame's width, rotated, with some perspective
    cw = rng.uniform(0.65, 0.95) * ns
    ch = cw / CARD_AR
    ang = math.radians(rng.uniform(-10, 10))
    cxy = np.array([ns / 2, ns / 2]) + rng.normal(0, 0.03 * ns, 2)
    rect = np.array([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    corners = rect @ rot.T + cxy + rng.normal(0, 0.035 * cw, (4, 2))
    card_pts = [(0, 0), (1, 0), (1, 1 / CARD_AR), (0, 1 / CARD_AR)]
    h_s2c = homography(corners, card_pts)
    if label == "screen":
        surf = Screen(rng, card, cw)
        ss = int(min(6, max(2, math.ceil(4.0 / surf.p_s))))
    else:
        if "lowtex" in ABLATE:  # a print texture of 1-3 texels per output pixel
            tw = int(round(cw / k * logu(rng, 1.0, 3.0)))
            small = Image.fromarray((card * 255).astype(np.uint8)).resize((tw, max(2, int(tw / CARD_AR))), Image.Resampling.BOX)
            card = np.asarray(small.resize((CARD_W, CARD_H), Image.Resampling.NEAREST), dtype=np.float32) / 255
        surf = Print(rng, card)
        # enough samples per sensor pixel to integrate the print's texels (about 1.5 texels
        # per sample): point samples of a finer texture alias its print into false moiré
        ss = int(min(6, max(2, math.ceil(CARD_W / cw / 1.5))))
    params.update(surf.params, sensor_scale=round(k, 3), ss=ss)
    sigma = logu(rng, 0.3, 1.6)  # lens blur, sensor pixels
    if "sharp" in ABLATE:
        sigma = logu(rng, 0.3, 0.8)
    params["lens_sigma"] = round(sigma, 3)
    # lighting/reflection fields in sensor coordinates (both classes)
    yy, xx = np.mgrid[0:ns, 0:ns].astype(np.float32) / ns
    light = 1 + rng.uniform(-0.25, 0.25) * (xx - 0.5) + rng.uniform(-0.25, 0.25) * (yy - 0.5)
    light = light[..., None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    glare = np.zeros((ns, ns, 1), dtype=np.float32)
    if rng.uniform() < 0.5:
        gx, gy, gr = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.35)
        glare += rng.uniform(0.05, 0.5) * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * gr * gr))[..., None]
    glare += rng.uniform(0, 0.04)
    params["glare"] = round(float(glare.max()), 3)
    # radiance, lens and pixel area, strip by strip at the supersampled resolution
    pad = int(math.ceil(3.5 * sigma)) + 1
    sensor = np.zeros((ns, ns, 3), dtype=np.float32)
    cover = np.zeros((ns, ns), dtype=np.float32)
    strip = max(8, 4096 // (ss * ss * 4))
    offs = (np.arange(ss, dtype=np.float64) + 0.5) / ss
    for r0 in range(0, ns, strip):
        r1 = min(ns, r0 + strip)
        a0, a1 = max(0, r0 - pad), min(ns, r1 + pad)
        ys = (np.arange(a0, a1)[:, None] + offs[None, :]).reshape(-1)
        xs = (np.arange(ns)[:, None] + offs[None, :]).reshape(-1)
        X, Y = np.meshgrid(xs, ys)
        den = h_s2c[2, 0] * X + h_s2c[2, 1] * Y + h_s2c[2, 2]
        u = (h_s2c[0, 0] * X + h_s2c[0, 1] * Y + h_s2c[0, 2]) / den
        v = (h_s2c[1, 0] * X + h_s2c[1, 1] * Y + h_s2c[1, 2]) / den
        rad = surf.radiance(u, v)
        rad = gauss2d(rad, sigma * ss)
        rad = rad.reshape(a1 - a0, ss, ns, ss, 3).mean(axis=(1, 3))
        sensor[r0:r1] = rad[r0 - a0:r0 - a0 + (r1 - r0)]
        ins = rounded(u, v).astype(np.float32)
        ins = ins.reshape(a1 - a0, ss, ns, ss).mean(axis=(1, 3))
        cover[r0:r1] = ins[r0 - a0:r0 - a0 + (r1 - r0)]
    if label == "direct":
        sensor = sensor * light
    else:
        sensor = sensor * (light * 0.5 + 0.5)  # a self-lit panel barely follows the room light
    sensor = sensor + glare * (0.0 if "glare" in ABLATE else 1.0) * rng.uniform(0.7, 1.0, 3).astype(np.float32)
    if label == "screen" and rng.uniform() < 0.35:  # PWM bands through a rolling shutter
        period = logu(rng, 6, 120)
        depth = rng.uniform(0.05, 0.35)
        rows = np.arange(ns, dtype=np.float32)
        band = 1 - depth * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rows / period + rng.uniform(0, 6.3))))
        band = gauss1d(band, rng.uniform(0.5, 4.0), 0)
        sensor = sensor * (band[:, None, None] if rng.uniform() < 0.7 else band[None, :, None])
        params["pwm"] = round(depth, 3)
    # auto exposure: the 98th percentile of luminance to 0.75-0.95
    lum = sensor.mean(axis=2)
    sensor = sensor * (rng.uniform(0.75, 0.95) / max(1e-4, float(np.percentile(lum, 98))))
    # Bayer mosaic with crosstalk
    xt = rng.uniform(0.0, 0.15)
    sensor = sensor * (1 - xt) + sensor.mean(axis=2, keepdims=True) * xt
    ph = int(rng.integers(0, 4))
    py, px = np.mgrid[0:ns, 0:ns]
    py, px = (py + ph // 2) % 2, (px + ph % 2) % 2
    masks = [(py == 0) & (px == 0), (py + px) == 1, (py == 1) & (px == 1)]
    wb = np.array([rng.uniform(0.45, 0.7), 1.0, rng.uniform(0.45, 0.75)], dtype=np.float32)
    raw = np.zeros((ns, ns), dtype=np.float32)
    for c in range(3):
        raw[masks[c]] = sensor[..., c][masks[c]] * wb[c]
    fw = logu(rng, 150, 5000) if "noise" not in ABLATE else 1e7
    raw = rng.poisson(np.clip(raw, 0, 4) * fw).astype(np.float32) / fw
    raw += rng.normal(0, logu(rng, 1, 6) / fw, raw.shape).astype(np.float32)
    raw = np.round(np.clip(raw, 0, 1) * 1023) / 1023
    params["full_well"] = round(fw, 1)
    edge = rng.uniform() < 0.5
    rgb = demosaic_edge(raw, masks) if edge else demosaic_bilinear(raw, masks)
    if "ideal" in ABLATE:
        rgb = np.clip(sensor, 0, 1)
    params["demosaic"] = "edge" if edge else "bilinear"
    # white balance (grey world with an error), colour matrix, tone
    means = rgb.reshape(-1, 3).mean(axis=0) + 1e-6
    rgb = rgb * (means[1] / means) * rng.uniform(0.95, 1.05, 3)
    sat = rng.uniform(1.0, 1.5) if "sat" not in ABLATE else 1.0
    y = rgb.mean(axis=2, keepdims=True)
    rgb = np.clip(y + sat * (rgb - y), 0, 1)
    out = lin_to_srgb(rgb)
    s_curve = rng.uniform(0, 0.3) if "tone" not in ABLATE else 0.0
    out = out + s_curve * (out - 0.5) * (1 - np.abs(2 * out - 1))
    # chroma noise reduction, sharpening
    yv, cb, cr = to_ycc(out)
    if rng.uniform() < 0.5 and "chroma" not in ABLATE:
        cs = rng.uniform(0.8, 3.0)
        cb, cr = gauss2d(cb, cs), gauss2d(cr, cs)
        params["chroma_nr"] = round(cs, 2)
    if rng.uniform() < 0.8 and "sharpen" not in ABLATE:
        amt = rng.uniform(0.3, 1.5)
        yv = yv + amt * (yv - gauss2d(yv, rng.uniform(0.7, 1.8)))
        params["sharpen"] = round(amt, 2)
    out = np.clip(from_ycc(yv, cb, cr), 0, 1)
    u8 = (out * 255 + 0.5).astype(np.uint8)
    sub = 0 if rng.uniform() < 0.2 else 2  # Pillow: 0 = 4:4:4, 2 = 4:2:0
    if "jpeg" not in ABLATE:
        u8 = jpeg(u8, rng.integers(70, 96), sub)
    im = Image.fromarray(u8)
    if rng.uniform() < 0.2:
        # OpenCV-like INTER_LINEAR: bilinear taps at the output centres, no anti-aliasing
        src = np.asarray(im, dtype=np.float32)
        c = (np.arange(size) + 0.5) * (ns / size) - 0.5
        U, V = np.meshgrid(c + 0.5, c + 0.5)
        small = bilinear_lookup(src, U, V)
        im = Image.fromarray(np.clip(small + 0.5, 0, 255).astype(np.uint8))
        params["resize"] = "aliasing-bilinear"
    else:
        m = int(rng.integers(0, 4))
        im = im.resize((size, size), [Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS][m])
        params["resize"] = ["box", "bilinear", "bicubic", "lanczos"][m]
    if rng.uniform() < 0.5 and "upload" not in ABLATE:
        im = Image.fromarray(jpeg(np.asarray(im), rng.integers(60, 96), 2))
        params["upload"] = True
    params["_cover"] = np.asarray(Image.fromarray((cover * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BOX))
    return idx, label, np.asarray(im), params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--count", type=int, default=400, help="images in all, half of each class")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plain-cards", action="store_true",
                    help="pale cards without a header band, portrait on the left (closer to moirelab's card): a diagnostic")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args()
    if a.size < 32 or a.size > 1024:
        sys.exit(f"indep_sim: --size {a.size} is out of range (32-1024)")
    if a.count < 2:
        sys.exit(f"indep_sim: --count {a.count} must be at least 2")
    for c in ("direct", "screen"):
        os.makedirs(os.path.join(a.out, "test", c), exist_ok=True)
    jobs = [(i, "direct" if i % 2 == 0 else "screen", a.size, a.seed, a.plain_cards) for i in range(a.count)]
    records = []
    with Pool(max(1, a.workers)) as pool:
        for idx, label, img, params in pool.imap_unordered(render, jobs, chunksize=2):
            path = os.path.join(a.out, "test", label, f"{idx:05d}.png")
            Image.fromarray(img).save(path + ".tmp.png")
            os.replace(path + ".tmp.png", path)
            cover = params.pop("_cover")
            if os.environ.get("INDEP_MASK"):
                os.makedirs(os.path.join(a.out, "masks"), exist_ok=True)
                Image.fromarray(cover).save(os.path.join(a.out, "masks", f"{idx:05d}.png"))
            records.append(params)
    records.sort(key=lambda r: r["index"])
    tmp = os.path.join(a.out, "params.jsonl.tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, os.path.join(a.out, "params.jsonl"))


if __name__ == "__main__":
    main()
