"""Run folders, reports, and (later) grids."""
