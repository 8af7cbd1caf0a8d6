"""Plugins bundled with photosr (installed as ``photosr.bundled``): one folder per plugin, data only."""
