"""Measure: everything that runs the model or reads its stored rows.

The stage between the plan and the analyses.  It resolves the image sets an audit needs (the probe,
shifted folders, corruptions, a concept bank, imported arrays), builds the model at most once,
extracts every missing layer into the activation store (:mod:`.activations`, :mod:`.extract`) and
hands back immutable summaries and stored rows; the heads (:mod:`.head_source`) are read from the
store or built here too.  Nothing in :mod:`..analyse` or :mod:`..metrics` starts a forward pass.
"""
