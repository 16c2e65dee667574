"""The analysis of a model as one report folder (``rfkit analyze``): the orchestration above the measuring
stages and the report writers; ``analyze.py`` for one model, ``batch.py`` for several."""
