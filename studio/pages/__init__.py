"""The studio's pages: one class per page, constructed as ``Page(app)``.

Each has ``view()`` (its layout, built once) and ``refresh()`` (re-read the store when
the page is shown); see :mod:`studio.app`.
"""
