"""File output helpers shared by every writer (atomic writes, tables)."""
