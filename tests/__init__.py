"""channelsync's tests.

A regular package, not a namespace one: ebaysdk installs a top-level ``tests`` package of
its own into site-packages, which would otherwise shadow this directory.
"""
