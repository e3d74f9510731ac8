"""``prepare SRC OUT``: import a folder of real scans (GDXray, SIXray, any images) into the prepared layout."""
from __future__ import annotations

from data_prep.prepare import add_arguments  # no TensorFlow import


def add_parser(sub):
    s = sub.add_parser("prepare", help="import a folder of real X-ray scans (GDXray, SIXray, any images)",
                       description="Convert a folder tree of PNG/JPEG/TIFF/BMP scans (GDXray Baggages layout, "
                                   "SIXray JPEGs, 16-bit TIFFs, RGBA, palette ...) into OUT/{train,test}/*.png "
                                   "grayscale letterboxed to SIZE (aspect kept, white padding) + manifest.csv, "
                                   "split 70/30 by series. Bad files are skipped with one line each and listed in "
                                   "OUT/prepare_report.json.")
    add_arguments(s)
    s.set_defaults(func=run)
    return s


def run(args):
    from data_prep.prepare import prepare_from_args

    prepare_from_args(args)
