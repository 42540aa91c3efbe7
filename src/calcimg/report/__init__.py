"""Rendering results: tables, JSON, label TIFFs and overlay pictures."""
