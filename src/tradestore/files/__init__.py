"""Candles in and out of files and DataFrames: CSV, JSON Lines, Parquet and pandas."""
