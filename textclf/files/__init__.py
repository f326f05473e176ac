"""What textclf writes and reads on disk: atomic writes, JSON and CSV files, and what it owns."""
