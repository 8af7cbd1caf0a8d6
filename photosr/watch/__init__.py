"""`photosr watch`: a daemon that processes every photo landing in a folder, durably and exactly once."""

from photosr.watch.config import WatchConfig
from photosr.watch.daemon import Daemon, pipeline_processor
from photosr.watch.ledger import Entry, Ledger
from photosr.watch.status import read_status

__all__ = ["Daemon", "Entry", "Ledger", "WatchConfig", "pipeline_processor", "read_status"]
