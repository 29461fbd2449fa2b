"""One reproducible recipe per paper experiment: `python -m training.recipes.<paper>_<experiment>`."""
