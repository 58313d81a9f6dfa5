"""Weekly digest of the top-gainers ELT's CSVs: which coins showed up most often, and with what average change."""
