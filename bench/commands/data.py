"""``data check``: verify (and for CamVid, download) a dataset folder."""

from __future__ import annotations

import argparse

from bench.data import DATA_ROOT_ENV, DATASETS, resolve_data_root
from bench.data.check import check_dataset
from bench.data.download import DEFAULT_CAMVID_URL, download_camvid
from bench.errors import ConfigError, DatasetError

EPILOG = f"""\
layouts under the data root (--data-root or ${DATA_ROOT_ENV}):
  camvid      ROOT/camvid/{{train,val,test}}{{,annot}}/ + {{train,val,test}}.txt  (SegNet layout)
              splits: train val test trainval
  camvid_paddleseg
              ROOT/camvid_paddleseg/{{images,annot}}/ + {{train,val,test}}.txt  (PaddleSeg, 960x720)
              splits: train val test trainval
  voc_sbd     ROOT/VOCdevkit/VOC2012/ + ROOT/SBD/ (benchmark_RELEASE/dataset: img/ cls/ *.txt)
              splits: train_aug val sbd_train seg11valid voc12_val_minus_sbd_train
              seed_train seed_val (seg11valid: FCN's list, placed by the user)
  cityscapes  ROOT/cityscapes/{{leftImg8bit,gtFine}}/{{train,val}}/CITY/
              splits: train val
  synthetic   generated into ROOT/synthetic-<hash>/ (default spec)
              splits: train val

exit status: 0 complete and valid, 1 problems found (listed), 2 unusable arguments
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` subcommand with ``data check``."""
    parser = subparsers.add_parser("data", help="check or download datasets")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="decode and validate every file of a dataset; report all problems",
        description="Verify that a dataset is complete and valid: split counts, missing "
        "files, undecodable images or masks, size mismatches, invalid label values.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("dataset", choices=DATASETS, metavar="DATASET", help=", ".join(DATASETS))
    check.add_argument("--data-root", metavar="DIR", help=f"data root (default: ${DATA_ROOT_ENV})")
    check.add_argument(
        "--split",
        action="append",
        metavar="SPLIT",
        help="split to check (repeatable); default: the dataset's standard splits",
    )
    check.add_argument(
        "--download",
        action="store_true",
        help="camvid only: download missing or corrupt files first (SHA-256 verified)",
    )
    check.add_argument(
        "--url",
        metavar="URL",
        help=f"base URL of the CamVid folder for --download (default: {DEFAULT_CAMVID_URL})",
    )
    check.add_argument(
        "--no-decode",
        dest="decode",
        action="store_false",
        help="only check that the listed files exist (fast)",
    )
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    if args.url and not args.download:
        raise ConfigError("--url is only used with --download")
    root = resolve_data_root(args.data_root, dataset=args.dataset)
    if args.download:
        if args.dataset != "camvid":
            raise DatasetError(
                f"--download supports camvid only; {args.dataset} must be obtained by hand "
                f"(run `liteseg-bench data check {args.dataset}` for instructions)"
            )
        summary = download_camvid(
            root,
            base_url=args.url or DEFAULT_CAMVID_URL,
            splits=args.split or ("train", "val", "test"),
        )
        print(f"downloaded {summary.downloaded} file(s), {summary.skipped} already verified")
    report = check_dataset(args.dataset, root, splits=args.split, decode=args.decode, progress=True)
    print(report.format())
    return 0 if report.ok else 1
