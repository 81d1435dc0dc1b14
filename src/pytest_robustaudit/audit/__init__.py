"""Audit: one spec end to end, plan -> measure -> analyse, and the session that runs each spec once.

:mod:`.runner` is free of pytest: the plugin's items, the fixtures and the ``validate`` command all
go through it.
"""
