"""Experiments on top of every method: one SQuAD run (`squad_run`), grids of cells (`grid`, run locally, on a
GPU queue or by submitit: `cluster`), and their reports (`grid_report`, `learned_table`)."""
