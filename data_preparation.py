"""Convert a dataset's images and masks to PNG, pair and validate them, and write the CSVs.

    python data_preparation.py --data_root DATA
    python data_preparation.py --data_root data/demo --synthetic 200

Originals are only read. PNGs go to DATA/png/ under the same relative path, CSVs to
DATA/csv_file/: train.csv, valid.csv, one train_<group>.csv per group, and rejected.csv.
"""

from segtf.cli.prepare import main

if __name__ == "__main__":
    main()
