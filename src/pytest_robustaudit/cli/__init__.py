"""The command-line tools about specs: ``validate`` (:mod:`.validate`) and ``list`` (:mod:`.listing`).

Each speaks its own language: a path that does not exist, a file that is not a spec, a spec with
problems are said in our words, never as pytest's options or internals; exit status 0 (all valid),
1 (a spec is invalid), 2 (a usage error).  ``python -m pytest_robustaudit`` (``__main__.py``) parses
the command line and calls them.
"""
