"""Make the optional extras look uninstalled, for tests/test_lean.py.

Put this directory first on PYTHONPATH and Python imports this file at start-up (``site``
runs ``sitecustomize`` after the ``.pth`` files, so editable-install finders are in place):
every finder on ``sys.meta_path`` is wrapped so that it does not find the modules of the
extras. An import of one then fails the way it does when it is not installed
(``ModuleNotFoundError: No module named 'matplotlib'``, ``exc.name == 'matplotlib'``) and
``importlib.util.find_spec`` returns None, because no finder finds it, not because something
raises. Child processes inherit PYTHONPATH and so the blocker.
"""

from __future__ import annotations

import sys

#: the top-level modules of every extra (crawler/extras.py), and numpy and PIL, which
#: matplotlib would bring
BLOCKED = frozenset({"matplotlib", "numpy", "PIL", "redis", "scrapy_redis", "pypdf", "c2pa",
                     "pyarrow"})


class _Hidden:
    """A meta path finder that is ``finder`` except that it never finds a blocked module."""

    def __init__(self, finder: object) -> None:
        self._finder = finder

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED:
            return None
        find_spec = getattr(self._finder, "find_spec", None)
        return None if find_spec is None else find_spec(fullname, path, target)

    def __getattr__(self, name):
        return getattr(self._finder, name)


if not any(name.partition(".")[0] in BLOCKED for name in sys.modules):
    sys.meta_path[:] = [_Hidden(f) for f in sys.meta_path]
else:  # pragma: no cover - a blocked module already imported at start-up would be a bug
    raise SystemExit("sitecustomize: a blocked module was imported before the blocker")
