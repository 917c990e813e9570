"""A seeded generator of a private corpus that looks like the real one.

The default plan is the card's scale: 1,138 train + 157 eval SFT rows that
curate into exactly 767 train + 155 eval tiles. On purpose it holds sibling
rows (some through byte-identical copies under another name), rows that point
into ``rejected_composites/`` (and one at a copy of a quarantined file), label
conflicts, missing files and a composite used in both splits.

Composites are 512x512: the left half a plausible Sentinel-2 false colour of
farmland (R = NIR, G = Red, B = Red Edge 1: vegetated fields bright red, bare
soil grey-brown, darker field boundaries); ``Yes`` tiles carry a faint positive
cropmark (ring ditch, enclosure or linear feature: more NIR and red-edge, less
red over the feature). The right half is a natural-colour "context" image with
fine texture and buildings, visibly different from the left. File names,
like the real corpus's, carry the source database, ID and date, which is why
the release renames every tile.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.domain import HALF_SIZE, Label
from builder.ingest.corpus import QUARANTINE_DIR, SITE_COLUMNS, SITES_FILE
from builder.model.prompt import messages
from builder.quality import gates
from builder.raster.bands import Bands, ReadInfo

_W, _H = HALF_SIZE
# Where the sources of the real corpus are: (database, lat range, lon range, id format).
_REGIONS = (
    ("Historic England AIM", (51.0, 54.5), (-2.8, 0.6), "AIM{:07d}"),
    ("Riksantikvaren Askeladden", (58.8, 61.0), (9.5, 11.5), "ASK{:06d}"),
    ("Tavoliere literature", (41.2, 41.8), (15.2, 16.0), "TAV{:04d}"),
)


@dataclass(frozen=True)
class Plan:
    """How many of each kind of row the corpus holds (defaults: the card)."""

    unique_train: int = 767
    unique_eval: int = 155
    siblings: int = 353  # extra train rows repeating a published train composite
    identical_copies: int = 20  # of those, rows pointing at a byte-identical copy
    quarantined_train: int = 10  # one of them points at a copy of a quarantined file
    quarantined_eval: int = 1
    conflicts: int = 2  # composites with a Yes row and a No row (train)
    missing_train: int = 2
    missing_eval: int = 1
    cross_split_rows: int = 2  # train rows pointing at one eval composite
    png_share: float = 0.1
    yes_share: float = 0.4
    bands_share: float = 0.05  # published composites that also get raw L2A bands (bands/<stem>.tif)
    # Extra train rows (label No) that the four gates reject: cloudy, forest, water and urban
    # scenes with raw bands; blank and context-less composites without.
    gate_cloudy: int = 2
    gate_blank: int = 2
    gate_forest: int = 1
    gate_water: int = 1
    gate_urban: int = 1
    gate_no_context: int = 2

    @property
    def gate_rows(self) -> int:
        return (
            self.gate_cloudy
            + self.gate_blank
            + self.gate_forest
            + self.gate_water
            + self.gate_urban
            + self.gate_no_context
        )

    @property
    def train_rows(self) -> int:
        return (
            self.unique_train
            + self.siblings
            + self.quarantined_train
            + 2 * self.conflicts
            + self.missing_train
            + self.cross_split_rows
            + self.gate_rows
        )

    @property
    def eval_rows(self) -> int:
        return self.unique_eval + self.quarantined_eval + self.missing_eval


SMALL_PLAN = Plan(
    unique_train=24,
    unique_eval=8,
    siblings=10,
    identical_copies=3,
    quarantined_train=3,
    quarantined_eval=1,
    conflicts=1,
    missing_train=1,
    missing_eval=1,
    cross_split_rows=2,
    png_share=0.25,
    bands_share=0.25,
    gate_cloudy=1,
    gate_blank=1,
    gate_no_context=1,
)


def _voronoi(rng: np.random.Generator, n: int) -> np.ndarray:
    points = rng.random((n, 2), dtype=np.float32) * np.array([_H, _W], dtype=np.float32)
    yy, xx = np.mgrid[0:_H, 0:_W].astype(np.float32)
    best = np.full((_H, _W), np.inf, dtype=np.float32)
    labels = np.zeros((_H, _W), dtype=np.int32)
    for i, (py, px) in enumerate(points):
        d = (yy - py) ** 2 + (xx - px) ** 2
        closer = d < best
        best[closer] = d[closer]
        labels[closer] = i
    return labels


def _smooth_noise(rng: np.random.Generator, scale: int, amplitude: float) -> np.ndarray:
    small = rng.normal(0.0, amplitude, (_H // scale, _W // scale)).astype(np.float32)
    resized = Image.fromarray(small, mode="F").resize((_W, _H), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def _cropmark_mask(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:_H, 0:_W].astype(np.float32)
    cy, cx = rng.uniform(80, _H - 80), rng.uniform(50, _W - 50)
    kind = rng.integers(3)
    if kind == 0:  # ring ditch
        radius, width = rng.uniform(14, 40), rng.uniform(2.5, 4.5)
        dist = np.abs(np.hypot(yy - cy, xx - cx) - radius)
    elif kind == 1:  # rectilinear enclosure, rotated
        angle = rng.uniform(0, np.pi / 2)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        half_u, half_v, width = rng.uniform(18, 45), rng.uniform(18, 60), rng.uniform(2.5, 4.0)
        dist = np.minimum(
            np.where(np.abs(v) <= half_v, np.abs(np.abs(u) - half_u), np.inf),
            np.where(np.abs(u) <= half_u, np.abs(np.abs(v) - half_v), np.inf),
        )
    else:  # linear feature (trackway, boundary ditch)
        angle = rng.uniform(0, np.pi)
        dist = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle))
        width = rng.uniform(2.0, 3.5)
    mask: np.ndarray = np.clip(1.0 - dist / width, 0.0, 1.0).astype(np.float32)
    return mask


def s2_half(rng: np.random.Generator, label: Label) -> np.ndarray:
    """A 512 x 256 x 3 uint8 false-colour tile (R=B08, G=B04, B=B05) of farmland."""
    return s2_reflectance(rng, label)[1]


def to_pixels(reflectance: np.ndarray) -> np.ndarray:
    """The collection pipeline's fixed stretch: reflectance 0..0.5 to 0..255."""
    pixels: np.ndarray = np.clip(reflectance / 0.5 * 255.0, 0, 255).astype(np.uint8)
    return pixels


def s2_reflectance(rng: np.random.Generator, label: Label) -> tuple[np.ndarray, np.ndarray]:
    """Farmland reflectance (512 x 256 x 3: B08, B04, B05) and its false-colour pixels."""
    n = int(rng.integers(8, 18))
    fields = _voronoi(rng, n)
    vegetated = rng.random(n) < 0.7
    # Reflectance per field: vegetation bright in NIR, low in red; bare soil flatter.
    nir = np.where(vegetated, rng.uniform(0.28, 0.45, n), rng.uniform(0.18, 0.27, n))
    red = np.where(vegetated, rng.uniform(0.03, 0.06, n), rng.uniform(0.12, 0.19, n))
    edge = np.where(vegetated, rng.uniform(0.08, 0.14, n), rng.uniform(0.15, 0.22, n))
    bands = np.stack([nir[fields], red[fields], edge[fields]], axis=-1).astype(np.float32)
    bands += _smooth_noise(rng, 16, 0.012)[..., None]
    boundary = np.zeros((_H, _W), dtype=bool)
    boundary[:, 1:] |= fields[:, 1:] != fields[:, :-1]
    boundary[1:, :] |= fields[1:, :] != fields[:-1, :]
    bands[boundary] *= np.array([0.75, 1.3, 1.1], dtype=np.float32)
    if label == "Yes":
        mask = _cropmark_mask(rng) * vegetated[fields]
        strength = rng.uniform(0.025, 0.045)
        bands += mask[..., None] * np.array([strength, -strength / 3, strength / 2], dtype=np.float32)
    bands += rng.normal(0.0, 0.004, bands.shape).astype(np.float32)
    return bands, to_pixels(bands)


def context_half(rng: np.random.Generator) -> np.ndarray:
    """A 512 x 256 x 3 uint8 natural-colour high-resolution context image."""
    n = int(rng.integers(15, 30))
    fields = _voronoi(rng, n)
    palette = rng.uniform([60, 90, 40], [140, 150, 90], (n, 3)).astype(np.float32)
    rgb = palette[fields] + rng.normal(0.0, 14.0, (_H, _W, 3)).astype(np.float32)
    for _ in range(int(rng.integers(3, 9))):  # buildings
        y, x = int(rng.integers(0, _H - 20)), int(rng.integers(0, _W - 20))
        h, w = int(rng.integers(6, 20)), int(rng.integers(6, 20))
        rgb[y : y + h, x : x + w] = rng.uniform(150, 210)
    y0 = int(rng.integers(0, _H))
    rgb[max(0, y0 - 3) : y0 + 3, :] = (175, 170, 160)  # a road
    pixels: np.ndarray = np.clip(rgb, 0, 255).astype(np.uint8)
    return pixels


# The UTM zone of each region's sites (England 30N, southern Norway 32N, Apulia 33N).
_UTM = {
    "Historic England AIM": "EPSG:32630",
    "Riksantikvaren Askeladden": "EPSG:32632",
    "Tavoliere literature": "EPSG:32633",
}


def _l2a_bands(reflectance: np.ndarray) -> dict[str, np.ndarray]:
    """The five bands of a sample scene from its B08/B04/B05 reflectance (blue and green follow red)."""
    nir, red, edge = (reflectance[..., i].astype(np.float32) for i in range(3))
    return {"B02": red * 0.75 + 0.01, "B03": red * 1.25 + 0.015, "B04": red, "B05": edge, "B08": nir}


def write_bands(path: Path, reflectance: np.ndarray, scl: np.ndarray, site: dict[str, str]) -> None:
    """Raw L2A bands of a tile (B02 B03 B04 B05 B08 SCL; DN = reflectance x 10000 + 1000) as a
    GeoTIFF on the site's UTM zone at 10 m, the tile centred on the site. Private: it holds the place."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import transform

    values = _l2a_bands(reflectance)
    crs = _UTM[site["source_db"]]
    xs, ys = transform("EPSG:4326", crs, [float(site["lon"])], [float(site["lat"])])
    left, top = round(xs[0] - _W * 5, -1), round(ys[0] + _H * 5, -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": _W, "height": _H, "count": 6, "dtype": "uint16", "crs": crs}
    profile |= {"transform": from_origin(left, top, 10.0, 10.0), "nodata": 0, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        for i, (band, refl) in enumerate(values.items(), 1):
            dst.write(np.clip(np.round(refl * 10_000) + 1000, 1, 65535).astype(np.uint16), i)
            dst.set_band_description(i, band)
        dst.write(scl.astype(np.uint16), 6)
        dst.set_band_description(6, "SCL")
        dst.update_tags(PROCESSING_LEVEL="Level-2A", PROCESSING_BASELINE="05.10", BOA_ADD_OFFSET="-1000")


def _bands_of(reflectance: np.ndarray, scl: np.ndarray) -> Any:
    data = _l2a_bands(reflectance)
    info = ReadInfo("sample", "L2A", -1000, "sample", "", data["B08"].shape, (), {})
    return Bands({**data, "SCL": scl.astype(np.uint8)}, None, None, info)


def _passes(reflectance: np.ndarray, scl: np.ndarray) -> bool:
    bands = _bands_of(reflectance, scl)
    return bool(gates.not_cloudy(bands).passed and gates.agricultural(bands).passed)


def _blob(rng: np.random.Generator, share: float) -> np.ndarray:
    """A smooth random mask covering about ``share`` of the tile."""
    noise = _smooth_noise(rng, 8, 1.0)
    mask: np.ndarray = noise >= np.quantile(noise, 1.0 - share)
    return mask


def _gate_scenes(w: _Writer) -> list[str]:
    """Composites the gates reject, each with its reason built in (see Plan.gate_*)."""
    rng, plan = w.bands_rng, w.plan
    out: list[str] = []

    def scene(
        reflectance: np.ndarray,
        scl: np.ndarray | None,
        left: np.ndarray | None = None,
        right: np.ndarray | None = None,
    ) -> None:
        stem, site = w.source_name()
        pixels = to_pixels(reflectance) if left is None else left
        out.append(w.write("composites", stem, site, pixels, context_half(rng) if right is None else right))
        if scl is not None:
            write_bands(w.root / "bands" / f"{stem}.tif", reflectance, scl, site)

    def uniform(nir: float, red: float, edge: float) -> np.ndarray:
        base = np.array([nir, red, edge], dtype=np.float32)
        out: np.ndarray = np.broadcast_to(base, (_H, _W, 3)) + _smooth_noise(rng, 16, 0.004)[..., None]
        return out

    for _ in range(plan.gate_cloudy):  # gate 2: SCL cloud over about 60 %
        reflectance, _ = s2_reflectance(rng, "No")
        cloud = _blob(rng, 0.6)
        reflectance[cloud] = 0.55
        scl = np.where(cloud, 9, 4).astype(np.uint16)
        scene(reflectance, scl)
    for _ in range(plan.gate_blank):  # gate 1: an empty acquisition (black)
        reflectance = np.zeros((_H, _W, 3), np.float32)
        scene(reflectance, None)
    for _ in range(plan.gate_forest):  # gate 4: closed canopy, dark in red
        scene(uniform(0.30, 0.028, 0.12), np.full((_H, _W), 4, np.uint16))
    for _ in range(plan.gate_water):  # gate 4: a lake (NDVI about -0.1) with a meadow shore
        reflectance = uniform(0.36, 0.06, 0.15)
        lake = _blob(rng, 0.65)
        reflectance[lake] = (0.045, 0.055, 0.05)
        scene(reflectance, np.where(lake, 6, 4).astype(np.uint16))
    for _ in range(plan.gate_urban):  # gate 4: roofs and asphalt with a few gardens
        reflectance = uniform(0.16, 0.14, 0.15) + rng.normal(0, 0.02, (_H, _W, 3)).astype(np.float32)
        gardens = _blob(rng, 0.3)
        reflectance[gardens] = (0.36, 0.06, 0.15)
        scene(reflectance, np.where(gardens, 4, 5).astype(np.uint16))
    for _ in range(plan.gate_no_context):  # gate 3: the context image never arrived
        reflectance, left = s2_reflectance(rng, "No")
        scene(reflectance, None, left, np.zeros((_H, _W, 3), np.uint8))
    return out


def _row(image: str, label: str) -> dict[str, Any]:
    # Not sft_row, which refuses bad labels: test factories write rows curation must reject.
    return {
        "messages": [*messages(image), {"role": "assistant", "content": [{"type": "text", "text": label}]}]
    }


class _Writer:
    def __init__(self, root: Path, rng: np.random.Generator, plan: Plan, seed: int) -> None:
        self.root, self.rng, self.plan = root, rng, plan
        self.sites: list[dict[str, str]] = []
        self.counter = 0
        # Raw bands and gate scenes draw from their own stream, so the composites are the
        # same with or without them.
        self.bands_rng = np.random.default_rng([seed, 1])

    def source_name(self) -> tuple[str, dict[str, str]]:
        db, (lat0, lat1), (lon0, lon1), id_format = _REGIONS[int(self.rng.integers(len(_REGIONS)))]
        self.counter += 1
        source_id = id_format.format(int(self.rng.integers(10 ** (len(id_format) - 6))) + self.counter)
        lat, lon = self.rng.uniform(lat0, lat1), self.rng.uniform(lon0, lon1)
        year, month, day = (int(self.rng.integers(a, b)) for a, b in ((17, 25), (5, 9), (1, 29)))
        date = f"20{year}-{month:02d}-{day:02d}"
        site = {
            "lat": f"{lat:.6f}",
            "lon": f"{lon:.6f}",
            "source_db": db,
            "source_id": source_id,
            "date": date,
        }
        return f"{source_id}_{date.replace('-', '')}_{lat:.4f}_{lon:.4f}", site

    def composite(self, folder: str, label: Label) -> str:
        stem, site = self.source_name()
        png = self.rng.random() < self.plan.png_share
        reflectance, left = s2_reflectance(self.rng, label)
        rel = self.write(folder, stem, site, left, context_half(self.rng), png)
        if folder == "composites" and self.bands_rng.random() < self.plan.bands_share:
            scl = np.where(reflectance[..., 0] > 0.24, 4, 5).astype(np.uint16)  # vegetation / bare soil
            if _passes(reflectance, scl):  # only scenes the gates keep: the published counts stay exact
                write_bands(self.root / "bands" / f"{stem}.tif", reflectance, scl, site)
        return rel

    def write(
        self,
        folder: str,
        stem: str,
        site: dict[str, str],
        left: np.ndarray,
        right: np.ndarray,
        png: bool = False,
    ) -> str:
        rel = f"{folder}/{stem}.{'png' if png else 'jpg'}"
        pixels = np.concatenate([left, right], axis=1)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if png:
            Image.fromarray(pixels).save(path, format="PNG")
        else:  # Pillow's q95 default (4:2:0), as the collection pipeline wrote them
            Image.fromarray(pixels).save(path, format="JPEG", quality=95)
        self.sites.append({"composite": rel, **site})
        return rel

    def copy(self, rel: str) -> str:
        stem, _ = self.source_name()
        new = f"composites/copies/{stem}{Path(rel).suffix}"
        (self.root / new).parent.mkdir(parents=True, exist_ok=True)
        (self.root / new).write_bytes((self.root / rel).read_bytes())
        site = next(s for s in self.sites if s["composite"] == rel)
        self.sites.append({**site, "composite": new})
        return new


def generate(root: Path, seed: int = 0, plan: Plan | None = None) -> Plan:
    """Write a sample private corpus to ``root`` and return the plan it follows."""
    plan = plan or Plan()
    rng = np.random.default_rng(seed)
    w = _Writer(root, rng, plan, seed)

    def label() -> Label:
        return "Yes" if rng.random() < plan.yes_share else "No"

    train: list[dict[str, Any]] = []
    eval_: list[dict[str, Any]] = []
    published_train = []
    for _ in range(plan.unique_train):
        lab = label()
        rel = w.composite("composites", lab)
        published_train.append((rel, lab))
        train.append(_row(rel, lab))
    for i in range(plan.siblings):
        rel, lab = published_train[int(rng.integers(len(published_train)))]
        train.append(_row(w.copy(rel) if i < plan.identical_copies else rel, lab))
    eval_published = []
    for _ in range(plan.unique_eval):
        lab = label()
        rel = w.composite("composites", lab)
        eval_published.append((rel, lab))
        eval_.append(_row(rel, lab))
    if plan.cross_split_rows:
        rel, lab = eval_published[0]
        train.extend(_row(rel, lab) for _ in range(plan.cross_split_rows))
    for rows, n in ((train, plan.quarantined_train), (eval_, plan.quarantined_eval)):
        for i in range(n):
            lab = label()
            quarantined = w.composite(QUARANTINE_DIR, lab)
            pointed = w.copy(quarantined) if rows is train and i == 0 else quarantined
            rows.append(_row(pointed, lab))
    for _ in range(plan.conflicts):
        rel = w.composite("composites", "Yes")
        train.extend([_row(rel, "Yes"), _row(rel, "No")])
    for rows, n in ((train, plan.missing_train), (eval_, plan.missing_eval)):
        for _ in range(n):
            stem, _site = w.source_name()
            rows.append(_row(f"composites/{stem}.jpg", label()))

    train.extend(_row(rel, "No") for rel in _gate_scenes(w))

    order_train = rng.permutation(len(train))
    order_eval = rng.permutation(len(eval_))
    (root / "sft").mkdir(parents=True, exist_ok=True)
    for name, rows, order in (("train", train, order_train), ("eval", eval_, order_eval)):
        with (root / "sft" / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for i in order:
                f.write(json.dumps(rows[i], ensure_ascii=False) + "\n")
    with (root / SITES_FILE).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(SITE_COLUMNS))
        writer.writeheader()
        writer.writerows(w.sites)
    return plan
