"""A gist model trained in full on any number of processes and saved, launched by test_ddp.py.

Usage: torchrun --standalone --nproc_per_node N tests/gist_ddp_job.py OUT. Writes the run folder OUT
(`OUT/model` is what `save_pretrained` wrote from the state dict gathered from every process).
"""

import sys

from compressions.config import load_config
from compressions.data.synthetic import synthetic_alpaca
from compressions.gist.config import GistConfig
from compressions.gist.train import train_gist

if __name__ == "__main__":
    overrides = ["model=tiny-random-llama", "mode=full", "num_gist=2", "train.batch_size=4", "train.micro_batch_size=2",
                 "train.learning_rate=1e-2", "group_by_length=false", f"out={sys.argv[1]}"]  # fmt: skip
    train_gist(load_config(GistConfig, overrides=overrides), synthetic_alpaca(16, seed=3), progress=False)
