"""Datasets in their official layouts, transforms, and dataset checks."""
