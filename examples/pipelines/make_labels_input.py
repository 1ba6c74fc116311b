"""Generates the small input of labels.yaml: data/images.parquet (a listing of image
files, as `dlprep files` would produce) and data/classes.csv (class name -> class id).

Usage: python make_labels_input.py [FOLDER]   (default: the folder of this script)
"""
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CLASSES = ["cat", "dog", "bird"]


def main(folder):
    data = Path(folder) / "data"
    data.mkdir(parents=True, exist_ok=True)
    paths, lengths = [], []
    for i in range(60):
        cls = CLASSES[i % 3]
        # Every 10th file sits outside a class folder: it has no label.
        paths.append(f"/images/{cls}/{i:04d}.jpg" if i % 10 != 9 else f"{i:04d}.jpg")
        lengths.append(0 if i % 7 == 6 else 1000 + i)  # some empty files
    pq.write_table(pa.table({"path": paths, "length": pa.array(lengths, pa.int64())}),
                   data / "images.parquet", row_group_size=16)
    pacsv.write_csv(pa.table({"label": CLASSES, "class_id": pa.array([0, 1, 2], pa.int64())}),
                    data / "classes.csv")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent)
