"""The ``cropmark composite`` subcommand: raw Sentinel-2 bands -> the S2 half and its gates."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import CropmarkError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from builder.quality.gates import GateResult
    from builder.quality.thresholds import GateConfig
    from builder.raster.bands import Bands


def cmd_composite(args: argparse.Namespace) -> int:
    import numpy as np

    from builder.ingest.composite import encode_jpeg
    from builder.quality import gates
    from builder.quality.thresholds import load_config
    from builder.raster import bands as raster

    config = load_config(args.gates) if args.gates is not None else gates.GateConfig()
    if args.cropland_classes:
        config = config.replace(cropland_classes=tuple(args.cropland_classes))
    bands = raster.read_bands(
        args.scene,
        bounds=args.bounds,
        box=args.box,
        offset=args.boa_offset,
        min_window=1 if args.allow_small_window else raster.MIN_WINDOW_PX,
    )
    rgb = raster.false_colour(bands)
    half = raster.s2_half(rgb)
    context = _context(args.context) if args.context is not None else None
    image = raster.composite(half, context) if context is not None else half
    data = _encoded(image, args.out)
    tile = encode_jpeg(half)
    right = np.asarray(image)[:, half.width :] if context is not None else None
    coverage = config.min_side_coverage
    mask = raster.read_side(args.cloud_mask, "cloud mask", bands, coverage) if args.cloud_mask else None
    cover = (
        raster.read_side(args.landcover, "land-cover raster", bands, coverage, raster.LANDCOVER_NODATA)
        if args.landcover
        else None
    )
    results = gates.evaluate(
        s2_jpeg_bytes=len(tile),
        s2_rgb=np.asarray(half),
        right=right,
        bands=bands,
        config=config,
        cloud_mask=mask,
        landcover=cover,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({image.width}x{image.height}, RGB = B08/B04/B05, stretch 2-98 %)")
    _print_read(bands, rgb, half.size)
    _print_gates(config, results)
    if args.report is not None:
        info = bands.info
        payload = {
            "read": {**info.__dict__, "shape": list(info.shape), "resampled": list(info.resampled)},
            "gates": [r.as_dict() for r in results],
        }
        args.report.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return 0


def _context(path: Path) -> Image.Image:
    """The context image (a PIL image), or a one-line error for a file that is not one."""
    from PIL import Image

    try:
        context = Image.open(path)
        context.load()
    except OSError as exc:
        raise CropmarkError(f"{path}: not an image ({exc}); pass the context half as PNG or JPEG") from None
    return context


def _encoded(image: Image.Image, out: Path) -> bytes:
    """``image`` as the bytes of ``out``'s kind: the release's JPEG, or PNG."""
    from builder.ingest.composite import encode_jpeg

    if out.suffix.lower() in (".jpg", ".jpeg"):
        return encode_jpeg(image)
    if out.suffix.lower() == ".png":
        import io

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    raise CropmarkError(f"{out}: write .jpg or .png")


def _print_read(bands: Bands, rgb: np.ndarray, size: tuple[int, int]) -> None:
    """What was read: level, size, offset, resizing and resampling, and the indices' spread."""
    from builder.raster import indices

    info = bands.info
    print(
        f"  read {info.level}, {info.shape[1]}x{info.shape[0]} px at 10 m, "
        f"offset {info.offset} ({info.offset_from})"
    )
    if (rgb.shape[1], rgb.shape[0]) != size:  # the window was not 256x512 px at 10 m
        print(
            f"  resized from {rgb.shape[1]}x{rgb.shape[0]} px (a 256x512 px window at 10 m needs no resizing)"
        )
    if info.resampled:
        print(f"  resampled onto the 10 m grid: {', '.join(info.resampled)}")
    for name, values in indices.compute(bands.data).items():
        stats = indices.summary(values)
        if stats["mean"] is not None:
            print(f"  {name:<10} mean {stats['mean']:.3f}  p05 {stats['p05']:.3f}  p95 {stats['p95']:.3f}")


def _print_gates(config: GateConfig, results: Sequence[GateResult]) -> None:
    """The thresholds in force and each gate's verdict."""
    from builder.quality.thresholds import changed_settings

    changed = changed_settings(config)
    print(
        "  thresholds     "
        + (
            ", ".join(f"{k}={v}" for k, v in changed.items()) + " (others: the card's)"
            if changed
            else "the card's"
        )
    )
    for result in results:
        verdict = "not evaluated" if not result.evaluated else ("pass" if result.passed else "FAIL")
        print(f"  gate {result.gate:<18} {verdict}{': ' + result.reason if result.reason else ''}")


def register(sub: Any) -> None:
    """Add ``composite`` to ``cropmark``'s subparsers."""
    from builder.raster.bands import MIN_WINDOW_PX

    k = sub.add_parser("composite", help="raw Sentinel-2 bands -> the false-colour S2 half (and the gates)")
    k.add_argument(
        "scene", type=Path, help="multi-band GeoTIFF with band descriptions, or a folder of per-band files"
    )
    k.add_argument("--out", type=Path, required=True, help="output .jpg (q95, 4:4:4, no metadata) or .png")
    window = k.add_mutually_exclusive_group()
    window.add_argument(
        "--bounds",
        type=float,
        nargs=4,
        metavar=("LEFT", "BOTTOM", "RIGHT", "TOP"),
        help="the window in the scene's CRS (default: the whole scene)",
    )
    window.add_argument(
        "--box",
        type=int,
        nargs=4,
        metavar=("COL", "ROW", "WIDTH", "HEIGHT"),
        help="the window in pixels of the 10 m grid (default: the whole scene)",
    )
    k.add_argument("--boa-offset", type=int, help="DN offset (e.g. -1000); default: from the scene's tags")
    k.add_argument(
        "--context", type=Path, help="a context image: write the 512x512 private composite instead"
    )
    k.add_argument(
        "--cloud-mask",
        type=Path,
        help="a cloud-mask raster (0 = clear, other values = cloud or shadow) when the scene has no SCL; "
        "without either, s2cloudless runs on L1C bands",
    )
    k.add_argument("--landcover", type=Path, help="a land-cover raster; its cropland fraction decides gate 4")
    k.add_argument(
        "--cropland-classes", type=int, nargs="+", help="land-cover classes that are cropland (default 40)"
    )
    k.add_argument("--gates", type=Path, help="a gates.json of thresholds other than the card's")
    k.add_argument(
        "--allow-small-window",
        action="store_true",
        help=f"accept a window under {MIN_WINDOW_PX} px on a side (it is enlarged to the 256x512 tile)",
    )
    k.add_argument("--report", type=Path, help="write what was read and the gate values as JSON (private)")
    k.set_defaults(func=cmd_composite)
