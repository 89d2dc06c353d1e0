"""Calibration on timm ViTs, the parameter file format, and the shipped default model and data."""
