"""The add-on's public name, ``crawler.addon.Addon``: what a project's ``ADDONS`` setting names.

The add-on lives in :mod:`crawler.crawl.addon`; this name is kept so every project that
enabled it keeps working.
"""

from crawler.crawl.addon import Addon

__all__ = ["Addon"]
