"""The audit log: one chained JSON record per crawl decision.

``record`` is sans-IO (canonical form, hashing, verification over lines); ``log`` is the one
writer that appends records to a file.
"""
