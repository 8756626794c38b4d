#!/usr/bin/env python3
"""Reads the TensorBoard event file our writer produced (Tests/Fixtures/tensorboard/events.out.tfevents.fixture,
written by TensorBoardSinkTests with SF_WRITE_TENSORBOARD_FIXTURE=PATH) with TensorBoard's own reader and
records every scalar (tag, step, value) it finds as scalars.json, which the Swift test compares against the
metrics it logged. TensorBoard's record reader checks both masked CRC-32Cs of every record; a corrupt file
raises DataLossError here. Pinned: tensorboard==2.21.0 (Scripts/reference/requirements.txt)."""
import json
import os
import shutil
import tempfile

import tensorboard
from tensorboard.backend.event_processing import event_accumulator, event_file_loader

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "Tests", "Fixtures", "tensorboard")


def main():
    assert tensorboard.__version__ == "2.21.0", tensorboard.__version__
    source = os.path.join(FIXTURES, "events.out.tfevents.fixture")
    # EventAccumulator reads a folder of files named as SummaryWriter names them.
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(source, os.path.join(d, "events.out.tfevents.1700000000.fixture"))
        acc = event_accumulator.EventAccumulator(d, size_guidance={event_accumulator.SCALARS: 0})
        acc.Reload()
        scalars = {tag: [{"step": e.step, "value": e.value, "wall_time": e.wall_time} for e in acc.Scalars(tag)]
                   for tag in sorted(acc.Tags()["scalars"])}
    records = list(event_file_loader.RawEventFileLoader(source).Load())
    first = event_file_loader.EventFileLoader(source).Load().__next__()
    out = {"tensorboard": tensorboard.__version__, "file_version": first.file_version, "records": len(records),
           "scalars": scalars}
    with open(os.path.join(FIXTURES, "scalars.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
