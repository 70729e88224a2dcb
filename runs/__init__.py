"""Everything about a run: its checks, its pieces built from config, its outputs."""
